from __future__ import annotations

import csv
import re
from typing import Any, Iterator

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db import transaction
from django.db.models import ProtectedError
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.log import record_event
from runs import lifecycle, waiting
from runs.recent import recent_page
from workflows import runner as workflow_runner
from workflows.models import Step, Workflow, WorkflowRun

from profiles.models import Profile

from . import binding_preview, configuration, execution, kinds, saved_queries, schema
from .access import integrations_for, profiles_for, runs_for
from .forms import ConfigurationForm, IntegrationForm, request_form_class
from .kinds.cells import cell_text
from .models import ConnectionCheck, Integration, QueryRun
from .saved_queries import SaveQueryForm


def _can(perm: str):
    return permission_required(perm, raise_exception=True)


@require_GET
@_can("integrations.view_integration")
def integration_list(request: HttpRequest) -> HttpResponse:
    integrations = integrations_for(request.user).prefetch_related("configurations")
    return render(request, "integrations/integration_list.html", {"integrations": integrations})


def _kind_from(request: HttpRequest, default: str | None = None) -> kinds.Kind:
    slug = request.POST.get("kind") or request.GET.get("kind") or default or next(iter(kinds.REGISTRY))
    try:
        return kinds.get(slug)
    except kinds.NotRegistered:
        return kinds.get(next(iter(kinds.REGISTRY)))


@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
@_can("integrations.add_integration")
def integration_create(request: HttpRequest) -> HttpResponse:
    kind = _kind_from(request)
    form = IntegrationForm(request.POST or None, kind=kind)
    if request.method == "POST" and form.is_valid():
        integration, changed = configuration.save(form, request.user)
        record_event(request, "create", integration, fields=changed)
        messages.success(request, f"Integration “{integration.name}” was created.")
        return redirect(integration)
    if request.htmx and request.method == "GET":
        # The Kind select re-renders only the kind's own fields.
        return render(request, "integrations/_kind_fields.html", {"form": form})
    return render(request, "integrations/integration_form.html", {"form": form, "integration": None})


@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
@_can("integrations.change_integration")
def integration_edit(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_object_or_404(Integration, pk=pk)
    form = IntegrationForm(request.POST or None, kind=integration.kind_impl, instance=integration)
    if request.method == "POST" and form.is_valid():
        _, changed = configuration.save(form, request.user)
        record_event(request, "change", integration, fields=changed)
        messages.success(request, f"Integration “{integration.name}” was saved." if changed
                         else f"Nothing changed in “{integration.name}”.")
        return redirect(integration)
    context: dict[str, Any] = {"form": form, "integration": integration,
                               "configuration": integration.default_configuration}
    return render(request, "integrations/integration_form.html", _with_last_preview(context, form))


def _with_last_preview(context: dict[str, Any], form: ConfigurationForm) -> dict[str, Any]:
    """What the bound fields resolve to, from the workflow's last successful run (masked)."""
    saved = form.configuration
    workflow = saved.credentials_workflow if saved is not None else None
    if saved is not None and saved.fetch_credentials and workflow is not None and not form.is_bound:
        run = binding_preview.last_preview(workflow)
        if run is not None:
            context.update(run=run, workflow=workflow, resolved=binding_preview.resolved_fields(
                form.kind_impl, saved.config, workflow, run.output))
    return context


@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
@_can("integrations.change_integration")
def configuration_edit(request: HttpRequest, pk: int, configuration_id: int | None = None) -> HttpResponse:
    """**Add configuration** (no id) or edit one that serves some profiles; the Default one is edited
    with the integration itself."""
    integration = get_object_or_404(Integration, pk=pk)
    saved = None
    if configuration_id is not None:
        saved = get_object_or_404(integration.configurations, pk=configuration_id)
        if saved.is_default:
            return redirect("integrations:edit", pk=pk)
    form = ConfigurationForm(request.POST or None, kind=integration.kind_impl, integration=integration,
                             configuration=saved, with_profiles=True)
    if request.method == "POST" and form.is_valid():
        saved, changed = configuration.save_configuration(form, integration)
        record_event(request, "change" if configuration_id else "create", integration, fields=changed,
                     configuration=saved.label)
        verb = "added" if configuration_id is None else ("saved" if changed else "")
        messages.success(request, f"Configuration “{saved.label}” of “{integration.name}” was {verb}." if verb
                         else f"Nothing changed in configuration “{saved.label}”.")
        return redirect(integration)
    context = {"form": form, "integration": integration, "configuration": saved}
    return render(request, "integrations/configuration_form.html", _with_last_preview(context, form))


@require_http_methods(["GET", "POST"])
@_can("integrations.change_integration")
def configuration_delete(request: HttpRequest, pk: int, configuration_id: int) -> HttpResponse:
    integration = get_object_or_404(Integration, pk=pk)
    saved = get_object_or_404(integration.configurations.filter(is_default=False), pk=configuration_id)
    if request.method == "POST":
        label = saved.label
        with transaction.atomic():
            record_event(request, "delete", integration, configuration=label)
            saved.delete()
        messages.success(request, f"Configuration “{label}” was deleted: its profiles now use Default.")
        return redirect(integration)
    return render(request, "integrations/configuration_confirm_delete.html",
                  {"integration": integration, "configuration": saved})


@require_http_methods(["GET", "POST"])
@_can("integrations.delete_integration")
def integration_delete(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_object_or_404(Integration, pk=pk)
    if request.method == "POST":
        name = integration.name
        try:
            with transaction.atomic():  # a refused delete leaves no audit event
                record_event(request, "delete", integration)
                integration.delete()
        except ProtectedError as exc:
            users = ", ".join(sorted({f"workflow {obj.workflow.name} (step {obj.name})" if isinstance(obj, Step)
                                      else str(obj) for obj in exc.protected_objects}))
            messages.error(request, f"“{name}” is still in use by {users} and was not deleted.")
            return redirect(integration)
        messages.success(request, f"Integration “{name}” was deleted.")
        return redirect("integrations:list")
    return render(request, "integrations/integration_confirm_delete.html", {"integration": integration})


@sensitive_post_parameters("password")
@require_POST
@_can("integrations.change_integration")
def test_connection(request: HttpRequest) -> HttpResponse:
    integration, kind = _form_subject(request)
    form = _posted_form(request, integration, kind)
    form.is_valid()
    field_errors = [
        f"{form[name].label}: {' '.join(form.errors[name])}" for name in form.kind_field_names() if name in form.errors
    ]
    if field_errors:
        return render(request, "integrations/_test_connection_result.html", {"field_errors": field_errors})
    workflow = form.cleaned_data.get("credentials_workflow") if form.cleaned_data.get("fetch_credentials") else None
    profile = _profile_to_test(request, form)
    check = execution.submit_connection_check(kind.slug, form.values(), form.configuration, request.user,
                                              workflow=workflow, profile=profile)
    record_event(request, "test_connection", integration, kind=kind.slug, profile=profile.key if profile else "",
                 configuration=form.configuration.label if form.configuration else "")
    return render(request, "integrations/_test_connection_result.html", {"check": check})


def _posted_form(request: HttpRequest, integration: Integration | None, kind: kinds.Kind) -> ConfigurationForm:
    """The form that posted: the integration's own (with its Default configuration), or another configuration's."""
    which = request.POST.get("configuration")  # posted by the configuration form: an id, or "new"
    if integration is not None and which:
        saved = None if which == "new" else get_object_or_404(integration.configurations, pk=_id(which))
        if saved is None or not saved.is_default:
            return ConfigurationForm(request.POST, kind=kind, integration=integration, configuration=saved,
                                     with_profiles=True)
    return IntegrationForm(request.POST, kind=kind, instance=integration)


def _profile_to_test(request: HttpRequest, form: ConfigurationForm) -> Profile | None:
    """Test connection and the workflow preview run under a profile the configuration serves:
    the first one ticked in **Profiles**, else one the saved configuration serves, else Production."""
    ticked = Profile.objects.filter(pk__in=[_id(v) for v in request.POST.getlist("profiles")]).first()
    if ticked is not None:
        return ticked
    return form.configuration.test_profile() if form.configuration is not None else Profile.objects.default()


@sensitive_post_parameters("password")
@require_POST
@_can("integrations.change_integration")
def preview_credentials(request: HttpRequest) -> HttpResponse:
    """"Run workflow" in the integration form: run it on a worker, then show its masked output
    and what each bound field resolves to. Polled with the form's current values."""
    integration, kind = _form_subject(request)
    workflow = Workflow.objects.filter(pk=_id(request.POST.get("credentials_workflow"))).first()
    if workflow is None:
        return render(request, "integrations/_credentials_preview.html", {"problem": "Choose a workflow first."})
    run = WorkflowRun.objects.filter(pk=_id(request.POST.get("preview_run")), workflow=workflow,
                                     user=request.user).first()
    if run is None:  # the button was clicked (no run yet), not a poll
        profile = _profile_to_test(request, _posted_form(request, integration, kind))
        run = workflow_runner.submit(workflow, request.user, trigger="preview", profile=profile)
    run = lifecycle.reap_if_lost(run)
    context = {"run": run, "workflow": workflow}
    if run.is_final and run.status == "succeeded":
        values = {name: request.POST.get(name, "") for name in kind.field_names()}
        context["resolved"] = binding_preview.resolved_fields(kind, values, workflow, run.output)
    return render(request, "integrations/_credentials_preview.html", context)


def _id(value: str | None) -> int | None:
    """A posted id, or None for anything that is not one (never a server error)."""
    return int(value) if value and value.isascii() and value.isdigit() and len(value) < 19 else None


def _form_subject(request: HttpRequest) -> tuple[Integration | None, kinds.Kind]:
    pk = _id(request.POST.get("integration"))
    integration = get_object_or_404(Integration, pk=pk) if pk else None
    return integration, integration.kind_impl if integration else _kind_from(request)


@require_GET
def connection_check(request: HttpRequest, pk: int) -> HttpResponse:
    check = lifecycle.reap_if_lost(get_object_or_404(ConnectionCheck, pk=pk, user=request.user))
    return render(request, "integrations/_test_connection_result.html", {"check": check})


@require_GET
@_can("integrations.view_integration")
def integration_detail(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_object_or_404(integrations_for(request.user), pk=pk)
    opened = None
    initial: dict[str, Any] = {}
    if integration.kind_impl.editor == "sql":
        # A saved query opened from Saved queries, else what the user last typed here.
        if request.GET.get("saved", "").isdigit():
            opened = get_object_or_404(saved_queries.visible(request.user, integration), pk=request.GET["saved"])
            initial["sql"] = opened.text
        else:
            initial["sql"] = saved_queries.draft_text(request.user, integration)
    form = request_form_class(integration.kind_impl)(initial=initial)
    context = _detail_context(request, integration, form)
    context["opened"] = opened
    context["can_update"] = opened is not None and saved_queries.may_change(request.user, opened)
    return render(request, "integrations/integration_detail.html", context)


def _detail_context(request: HttpRequest, integration: Integration, form: Any,
                    run: QueryRun | None = None) -> dict[str, Any]:
    recent = recent_page(runs_for(request.user).filter(integration=integration).select_related("user", "profile")
                         .defer("results"), request.GET.get("before"), settings.QUERY_RECENT_RUNS)
    profiles = list(profiles_for(request.user, integration))
    context = {"integration": integration, "form": form, "run": run, "recent_runs": recent.runs,
               "recent": recent, "profiles": profiles,
               "chosen_profile": _last_profile(request, integration, profiles),
               "has_schema": schema.has_schema(integration)}
    if integration.kind_impl.editor == "sql" and request.user.has_perm("integrations.run_query"):
        context["saved_queries"] = saved_queries.listed(request.user, integration)
        context["save_form"] = SaveQueryForm(prefix="save", integration=integration)
        context["draft_url"] = reverse("integrations:save_draft", args=[integration.pk])
    if request.user.has_perm("integrations.change_integration"):
        context["configurations"] = integration.configurations.prefetch_related("profiles").select_related(
            "credentials_workflow")
    return context


def _last_profile(request: HttpRequest, integration: Integration, profiles: list[Profile]) -> Profile | None:
    """The profile of the user's last run on this integration, else Production, else the first they may use."""
    last = (QueryRun.objects.filter(integration=integration, user=request.user).order_by("-pk")
            .values_list("profile__key", flat=True).first())
    for wanted in (last, "production"):
        for profile in profiles:
            if profile.key == wanted:
                return profile
    return profiles[0] if profiles else None


@require_POST
@_can("integrations.run_query")
def run_query(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_object_or_404(integrations_for(request.user), pk=pk)
    # A profile the user may not use does not exist for them, as an integration not shared does not.
    profile = get_object_or_404(profiles_for(request.user, integration), key=request.POST.get("profile", "production"))
    form = request_form_class(integration.kind_impl)(request.POST)
    if not form.is_valid():
        if request.htmx:
            return render(request, "integrations/_query_form_errors.html", {"form": form})
        return render(request, "integrations/integration_detail.html", _detail_context(request, integration, form))
    with transaction.atomic():  # the run and its audit event: one write, one commit
        run = execution.submit(integration, form.request_text(), request.user, profile)
        record_event(request, "run_query", integration, run=run.pk, sql=run.sql[:500], profile=profile.key,
                     configuration=run.configuration.label)
    # Most queries finish within the wait: their result is this answer, with no page polls.
    run = waiting.until_final_if_free(run, settings.CONSOLE_WAIT_S,
                                      unserved_check_after_s=waiting.UNSERVED_CHECK_AFTER_S)
    if request.htmx:
        return _run_partial(request, run)
    return redirect("integrations:run", pk=integration.pk, run_id=run.pk)


def _run_partial(request: HttpRequest, run: QueryRun) -> HttpResponse:
    response = render(request, "integrations/_query_run.html", {"run": run, "integration": run.integration})
    if run.is_final:
        response["HX-Trigger"] = "run-finished"  # the recent runs list refreshes itself
    return response


def _visible_run(request: HttpRequest, pk: int, run_id: int) -> QueryRun:
    return get_object_or_404(runs_for(request.user).select_related("integration", "user", "profile"), pk=run_id,
                             integration_id=pk)


@require_GET
@_can("integrations.view_integration")
def query_run(request: HttpRequest, pk: int, run_id: int) -> HttpResponse:
    run = lifecycle.reap_if_lost(_visible_run(request, pk, run_id))
    if request.htmx:
        return _run_partial(request, run)
    form_class = request_form_class(run.integration.kind_impl)
    form = form_class(initial=form_class.initial_from(run.sql))
    return render(request, "integrations/integration_detail.html",
                  _detail_context(request, run.integration, form, run))


@require_POST
@_can("integrations.run_query")
def cancel_run(request: HttpRequest, pk: int, run_id: int) -> HttpResponse:
    run = lifecycle.request_cancel(_visible_run(request, pk, run_id))
    if request.htmx:
        return render(request, "integrations/_query_run.html", {"run": run, "integration": run.integration})
    return redirect("integrations:run", pk=pk, run_id=run.pk)


@require_GET
@_can("integrations.view_integration")
def run_csv(request: HttpRequest, pk: int, run_id: int, number: int = 1) -> HttpResponse:
    """Result ``number`` (1-based, in statement order) of a run, as CSV."""
    run = _visible_run(request, pk, run_id)
    if not 1 <= number <= len(run.results) or not run.results[number - 1]["columns"]:
        raise Http404("no such result")
    result = run.results[number - 1]
    response = StreamingHttpResponse(_csv_lines(result["columns"], result["rows"]),
                                     content_type="text/csv; charset=utf-8")
    suffix = f"-{number}" if len(run.results) > 1 else ""
    filename = f"{slugify(run.integration.name) or 'query'}-run-{run.pk}{suffix}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_lines(columns: list[str], rows: list[list[Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield "\ufeff"  # so that spreadsheet programs read the file as UTF-8
    yield writer.writerow([_csv_safe(c) for c in columns])
    for row in rows:
        yield writer.writerow([_csv_safe(cell_text(v)) for v in row])


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _csv_safe(value: str) -> str:
    # A cell starting with = + - @ (or a tab or carriage return) runs as a formula in
    # spreadsheet programs: a leading quote makes it text. Plain numbers ("-1.5") stay numbers.
    if value[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NUMBER.fullmatch(value):
        return "'" + value
    return value
