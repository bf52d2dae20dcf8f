"""Saved queries (**Save query**, **Saved queries**, their own page) and the Query box's draft.
An integration, or a saved query, the user may not see does not exist for them (404)."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.log import record_event

from . import saved_queries
from .access import integrations_for
from .models import Integration, SavedQuery
from .saved_queries import EditSavedQueryForm, SaveQueryForm

_can_query = permission_required("integrations.run_query", raise_exception=True)


def _integration(request: HttpRequest, pk: int) -> Integration:
    integration = get_object_or_404(integrations_for(request.user), pk=pk)
    if integration.kind_impl.editor != "sql":
        raise PermissionDenied("Saved queries and drafts are for SQL integrations.")
    return integration


def opened_url(saved: SavedQuery) -> str:
    return reverse("integrations:detail", args=[saved.integration_id]) + f"?saved={saved.pk}"


@require_POST
@_can_query
def save_draft(request: HttpRequest, pk: int) -> HttpResponse:
    saved_queries.save_draft(request.user, _integration(request, pk), request.POST.get("text", ""))
    return HttpResponse(status=204)


@require_POST
@_can_query
def save_query(request: HttpRequest, pk: int) -> HttpResponse:
    """**Save query** (a new one), or **Update query** (the one open, posted as ``saved``)."""
    integration = _integration(request, pk)
    text = request.POST.get("sql", "")
    updating = None
    if request.POST.get("saved"):
        updating = get_object_or_404(saved_queries.visible(request.user, integration), pk=request.POST["saved"])
        if not saved_queries.may_change(request.user, updating):
            raise PermissionDenied("Only its author or a Builder may change this saved query.")
    if updating is not None and "update" in request.POST:
        form = SaveQueryForm({"save-name": updating.name, "save-description": updating.description,
                              "save-shared": updating.shared or ""}, prefix="save", instance=updating,
                             integration=integration)
    else:
        form = SaveQueryForm(request.POST, prefix="save", integration=integration)
    if not text.strip():
        form.add_error(None, "Write the query to save in the Query box.")
    elif len(text) > saved_queries.MAX_TEXT:
        form.add_error(None, f"The query is longer than {saved_queries.MAX_TEXT:,} characters.")
    if not form.is_valid():
        return render(request, "integrations/_save_query.html",
                      {"integration": integration, "save_form": form, "opened": updating, "can_update": True,
                       "open_form": True})
    with transaction.atomic():
        saved = form.save(commit=False)
        saved.integration, saved.text = integration, text
        saved.chart = saved_queries.chart_config(request.POST.get("chart"))
        if saved.pk is None:
            saved.author = request.user
        saved.save()
        record_event(request, "update_saved_query" if updating else "save_query", integration, saved_query=saved.name)
    message = f"Saved query “{saved.name}” was {'updated' if updating else 'saved'}."
    if not request.htmx:
        messages.success(request, message)
        return redirect(opened_url(saved))
    response = render(request, "integrations/_save_query.html",
                      {"integration": integration, "save_form": SaveQueryForm(prefix="save", integration=integration),
                       "opened": saved, "can_update": True, "saved_message": message})
    response["HX-Trigger"] = "saved-queries-changed"
    return response


@require_GET
@_can_query
def saved_query_list(request: HttpRequest, pk: int) -> HttpResponse:
    integration = _integration(request, pk)
    return render(request, "integrations/_saved_queries.html",
                  {"integration": integration, "saved_queries": saved_queries.listed(request.user, integration)})


def _changeable(request: HttpRequest, pk: int, saved_id: int) -> tuple[Integration, SavedQuery]:
    integration = _integration(request, pk)
    saved = get_object_or_404(saved_queries.visible(request.user, integration), pk=saved_id)
    if not saved_queries.may_change(request.user, saved):
        raise PermissionDenied("Only its author or a Builder may change this saved query.")
    return integration, saved


@require_http_methods(["GET", "POST"])
@_can_query
def saved_query_edit(request: HttpRequest, pk: int, saved_id: int) -> HttpResponse:
    integration, saved = _changeable(request, pk, saved_id)
    form = EditSavedQueryForm(request.POST or None, instance=saved, integration=integration)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            form.save()
            record_event(request, "update_saved_query", integration, saved_query=saved.name)
        messages.success(request, f"Saved query “{saved.name}” was updated.")
        return redirect(opened_url(saved))
    return render(request, "integrations/saved_query_form.html",
                  {"integration": integration, "saved": saved, "form": form})


@require_POST
@_can_query
def saved_query_delete(request: HttpRequest, pk: int, saved_id: int) -> HttpResponse:
    integration, saved = _changeable(request, pk, saved_id)
    name = saved.name
    with transaction.atomic():
        record_event(request, "delete_saved_query", integration, saved_query=name)
        saved.delete()
    messages.success(request, f"Saved query “{name}” was deleted.")
    return redirect(integration)
