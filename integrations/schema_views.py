"""The console's Schema panel: its state (read by a worker, see schema.py), the JSON that it
lists and completion reads, and **Refresh schema**. Whoever may query an integration
under a profile may read its schema under it; for anyone else it does not exist (404)."""
from __future__ import annotations

from django.contrib.auth.decorators import permission_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from audit.log import record_event
from profiles.models import Profile
from runs import lifecycle

from . import schema
from .access import integrations_for, profiles_for
from .models import Integration, SchemaRead


def _target(request: HttpRequest, pk: int, profile_key: str | None) -> tuple[Integration, Profile]:
    integration = get_object_or_404(integrations_for(request.user), pk=pk)
    if not schema.has_schema(integration):
        raise Http404("This kind of integration has no schema.")
    return integration, get_object_or_404(profiles_for(request.user, integration), key=profile_key or "production")


def _read(request: HttpRequest, integration: Integration, profile: Profile) -> SchemaRead:
    with transaction.atomic():  # the read and its audit event: one commit
        read = schema.submit(integration, profile, request.user)
        record_event(request, "read_schema", integration, run=read.pk, profile=profile.key)
    return read


def _panel(request: HttpRequest, integration: Integration, profile: Profile, read: SchemaRead) -> HttpResponse:
    """The panel for ``read``, the newest read of the integration under the profile."""
    read = lifecycle.reap_if_lost(read)
    shown = read if read.status == "succeeded" else schema.cached(integration, profile)
    response = render(request, "integrations/_schema_panel.html",
                      {"integration": integration, "profile": profile, "read": read, "shown": shown})
    if read.is_final and request.headers.get("HX-Request") and request.GET.get("polling"):
        response["HX-Trigger"] = "schema-loaded"  # completion reads the new schema
    return response


@require_GET
@permission_required("integrations.run_query", raise_exception=True)
def schema_panel(request: HttpRequest, pk: int) -> HttpResponse:
    """The panel for the chosen profile; the first look at an integration's schema reads it."""
    integration, profile = _target(request, pk, request.GET.get("profile"))
    read = schema.latest(integration, profile) or _read(request, integration, profile)
    return _panel(request, integration, profile, read)


@require_POST
@permission_required("integrations.run_query", raise_exception=True)
def refresh_schema(request: HttpRequest, pk: int) -> HttpResponse:
    integration, profile = _target(request, pk, request.POST.get("profile"))
    return _panel(request, integration, profile, _read(request, integration, profile))


@require_GET
@permission_required("integrations.run_query", raise_exception=True)
def schema_json(request: HttpRequest, pk: int) -> JsonResponse:
    """What the editor completes from: the schema as last read (empty until one is)."""
    integration, profile = _target(request, pk, request.GET.get("profile"))
    read = schema.cached(integration, profile, with_schema=True)
    return JsonResponse(read.schema if read else {"schemas": [], "truncated": False})
