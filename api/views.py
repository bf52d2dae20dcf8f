from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from audit.log import record_event

from runs import waiting

from . import answers, cancelling, openapi, payloads, run_ids, start, tokens
from .endpoint import endpoint
from .errors import ApiError
from .forms import TokenForm
from .models import ApiToken

# --- The API (/api/v1/): JSON only ------------------------------------------------


@endpoint("POST")
def run_workflow(request: HttpRequest, token: ApiToken, name: str) -> HttpResponse:
    wait_s = payloads.wait_seconds(request, settings.API_DEFAULT_WAIT_S)
    run = start.workflow_run(request, token, name)
    return answers.answer(request, waiting.until_final_if_free(run, wait_s), pending_status=202)


@endpoint("POST")
def query(request: HttpRequest, token: ApiToken, name: str) -> HttpResponse:
    wait_s = payloads.wait_seconds(request, settings.API_DEFAULT_WAIT_S)
    run = start.query(request, token, name)
    return answers.answer(request, waiting.until_final_if_free(run, wait_s), pending_status=202)


@endpoint("GET")
def run(request: HttpRequest, token: ApiToken, run_id: str) -> HttpResponse:
    wait_s = payloads.wait_seconds(request, 0)
    return answers.answer(request, waiting.until_final_if_free(run_ids.visible_run(token.user, run_id), wait_s))


@endpoint("POST")
def cancel(request: HttpRequest, token: ApiToken, run_id: str) -> HttpResponse:
    wait_s = payloads.wait_seconds(request, 0)
    return answers.answer(request, waiting.until_final_if_free(cancelling.cancel(request, token, run_id), wait_s))


@endpoint("GET", authenticated=False)
def openapi_document(request: HttpRequest) -> HttpResponse:
    return JsonResponse(openapi.document())


@endpoint("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", authenticated=False)
def not_found(request: HttpRequest) -> HttpResponse:
    raise ApiError(404, f"No API at {request.path}; see /api/v1/openapi.json.")


# --- The API tokens page ----------------------------------------------------------


@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    """The user's own tokens, and **Create token**: the new token is shown once, on the answer to the POST."""
    form = TokenForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            new = tokens.create(request.user, form.cleaned_data["name"])
            record_event(request, "api_token_create", new.token, name=new.token.name)
        response = render(request, "api/token_created.html", {"token": new.token, "secret": new.secret})
        response["Cache-Control"] = "no-store"  # the secret must not stay in a cache
        return response
    active = request.user.api_tokens.filter(revoked_at__isnull=True)
    return render(request, "api/token_list.html", {"form": form, "tokens": active})


@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(request.user.api_tokens.filter(revoked_at__isnull=True), pk=pk)
    with transaction.atomic():
        tokens.revoke(token)
        record_event(request, "api_token_revoke", token, name=token.name)
    messages.success(request, f"Token “{token.name}” was revoked: it no longer works.")
    return redirect("api_tokens:list")
