from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db import transaction
from django.db.models import ProtectedError
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.log import record_event
from runs import lifecycle
from runs.recent import recent_page

from . import access, editing, runner, schedules
from .forms import (PARAM_PREFIX, STEP_PREFIX, ParameterFormSet, RunForm, StepFormSet, WorkflowForm,
                    new_parameter, posted_rows, rearrange, step_initial)
from .models import Workflow, WorkflowRun

STEP_FIELDS = ("name", "step_type", "code", "integration", "sql", "method", "path", "body", "timeout_s")
PARAM_FIELDS = ("name", "default")
PARAM_ACTION = "params-action"  # the name of the Add parameter and Remove buttons


def _can(perm: str):
    return permission_required(perm, raise_exception=True)


@require_GET
@_can("workflows.view_workflow")
def workflow_list(request: HttpRequest) -> HttpResponse:
    return render(request, "workflows/workflow_list.html",
                  {"workflows": access.workflows_for(request.user), "sees_steps": access.sees_steps(request.user)})


def _editor(request: HttpRequest, workflow: Workflow | None) -> HttpResponse:
    if request.method == "POST" and PARAM_ACTION in request.POST:
        # Add parameter or Remove without JavaScript: the editor again as typed, nothing saved.
        form = WorkflowForm(instance=workflow, initial={f: request.POST.get(f, "") for f in
                                                        ("name", "description", "schedule", "schedule_profile")})
        steps = _steps(request, initial=posted_rows(request.POST, STEP_PREFIX, STEP_FIELDS))
        params = _edited_params(request)
    elif request.method == "POST":
        form = WorkflowForm(request.POST, instance=workflow)
        steps = _steps(request, data=request.POST)
        params = ParameterFormSet(request.POST, prefix=PARAM_PREFIX)
        if form.is_valid() & steps.is_valid() & params.is_valid():  # & so every form shows its errors
            saved, changed = editing.save(form, steps, params, request.user)
            record_event(request, "change" if workflow else "create", saved, fields=changed)
            if workflow and not changed:
                messages.success(request, f"Nothing changed in “{saved.name}”.")
            else:
                messages.success(request, f"Workflow “{saved.name}” was {'saved' if workflow else 'created'}.")
            return redirect(saved)
    else:
        form = WorkflowForm(instance=workflow)
        steps = _steps(request, initial=step_initial(workflow))
        params = ParameterFormSet(prefix=PARAM_PREFIX, initial=workflow.parameters if workflow else [])
    # A refused Schedule says why once, in its error beside the field.
    reading = {} if form.errors.get("schedule") else schedules.reading(form["schedule"].value() or "")
    return render(request, "workflows/workflow_form.html",
                  {"form": form, "steps": steps, "params": params, "workflow": workflow, "schedule": reading})


@require_GET
@_can("workflows.change_workflow")
def schedule_reading(request: HttpRequest) -> HttpResponse:
    """The editor's reading of a typed Schedule: what it means and its next three times."""
    return render(request, "workflows/_schedule_reading.html",
                  {"schedule": schedules.reading(request.GET.get("schedule", ""))})


@require_http_methods(["GET", "POST"])
@_can("workflows.add_workflow")
def workflow_create(request: HttpRequest) -> HttpResponse:
    return _editor(request, None)


@require_http_methods(["GET", "POST"])
@_can("workflows.change_workflow")
def workflow_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _editor(request, get_object_or_404(Workflow, pk=pk))


@require_POST
@_can("workflows.change_workflow")
def edit_steps(request: HttpRequest) -> HttpResponse:
    """Add, remove or move a step in the editor; returns the steps, keeping what was typed."""
    rows = rearrange(posted_rows(request.POST, STEP_PREFIX, STEP_FIELDS), request.POST.get("action", ""))
    return render(request, "workflows/_steps.html", {"steps": _steps(request, initial=rows)})


def _steps(request: HttpRequest, *, data: dict | None = None, initial: list | None = None) -> StepFormSet:
    """The steps' forms; their bindings may read the parameters as posted (and earlier steps)."""
    steps = StepFormSet(data, prefix=STEP_PREFIX, initial=initial, form_kwargs={"user": request.user})
    steps.parameter_names = [row["name"] for row in posted_rows(request.POST, PARAM_PREFIX, PARAM_FIELDS)
                             if row["name"]]
    return steps


@require_POST
@_can("workflows.change_workflow")
def edit_parameters(request: HttpRequest) -> HttpResponse:
    """Add parameter or Remove in the editor; returns the parameters, keeping what was typed."""
    return render(request, "workflows/_parameters.html", {"params": _edited_params(request)})


def _edited_params(request: HttpRequest) -> ParameterFormSet:
    rows = posted_rows(request.POST, PARAM_PREFIX, PARAM_FIELDS)
    return ParameterFormSet(prefix=PARAM_PREFIX,
                            initial=rearrange(rows, request.POST.get(PARAM_ACTION, ""), new_parameter))


@require_http_methods(["GET", "POST"])
@_can("workflows.delete_workflow")
def workflow_delete(request: HttpRequest, pk: int) -> HttpResponse:
    workflow = get_object_or_404(Workflow, pk=pk)
    if request.method == "POST":
        name = workflow.name
        try:
            with transaction.atomic():  # a refused delete leaves no audit event
                record_event(request, "delete", workflow)
                schedules.unschedule(workflow)
                workflow.delete()
        except ProtectedError as exc:
            users = ", ".join(sorted(str(obj) for obj in exc.protected_objects))
            messages.error(request, f"“{name}” fetches credentials for {users}; change those integrations first.")
            return redirect(workflow)
        messages.success(request, f"Workflow “{name}” was deleted.")
        return redirect("workflows:list")
    return render(request, "workflows/workflow_confirm_delete.html", {"workflow": workflow})


def _runnable(request: HttpRequest, pk: int) -> Workflow:
    """The workflow, if the user may run it; otherwise a 403 page that says why."""
    workflow = get_object_or_404(Workflow.objects.prefetch_related("steps"), pk=pk)
    refusal = access.run_refusal(request.user, workflow)
    if refusal:
        raise PermissionDenied(refusal)
    return workflow


@require_GET
@_can("workflows.view_workflow")
def workflow_detail(request: HttpRequest, pk: int) -> HttpResponse:
    workflow = _runnable(request, pk)
    return render(request, "workflows/workflow_detail.html", _detail_context(request, workflow))


def _detail_context(request: HttpRequest, workflow: Workflow, run: WorkflowRun | None = None,
                    run_form: RunForm | None = None) -> dict:
    recent = recent_page(access.runs_for(request.user).filter(workflow=workflow).select_related("user", "profile")
                         .defer("output"), request.GET.get("before"))
    return {"workflow": workflow, "run": run, "recent_runs": recent.runs, "recent": recent,
            "sees_steps": access.sees_steps(request.user),
            "run_form": run_form or _run_form(request, workflow), "schedule": schedules.reading(workflow.schedule)}


def _last_profile_key(workflow: Workflow) -> str:
    return f"workflow-profile-{workflow.pk}"


def _run_form(request: HttpRequest, workflow: Workflow, data: dict | None = None) -> RunForm:
    """The Run workflow form; its Profile starts at this user's last choice for this workflow."""
    return RunForm(data, workflow=workflow, last_choice=request.session.get(_last_profile_key(workflow)))


@require_POST
@_can("workflows.run_workflow")
def start_run(request: HttpRequest, pk: int) -> HttpResponse:
    workflow = _runnable(request, pk)
    form = _run_form(request, workflow, request.POST)
    # Checked again for the chosen profile: a Runner may be allowed some profiles only.
    refusal = form.is_valid() and access.run_refusal(request.user, workflow, form.cleaned_data["profile"])
    if refusal:
        form.add_error("profile", refusal)
    if form.errors:
        if request.htmx:
            return render(request, "workflows/_run_form_errors.html", {"form": form, "workflow": workflow})
        return render(request, "workflows/workflow_detail.html", _detail_context(request, workflow, run_form=form))
    profile = form.cleaned_data["profile"]
    params = form.cleaned_data["params"]
    with transaction.atomic():  # the run and its audit event: one write, one commit
        run = runner.submit(workflow, request.user, params=params, profile=profile)
        record_event(request, "run_workflow", workflow, run=run.pk, profile=profile.key if profile else None)
    if profile is not None:
        request.session[_last_profile_key(workflow)] = profile.key
    if request.htmx:
        return render(request, "workflows/_run_started.html", {"run": run, "sees_steps": access.sees_steps(request.user),
                                                               "workflow": workflow, "run_form": form})
    return redirect("workflows:run_detail", pk=workflow.pk, run_id=run.pk)


@require_GET
@_can("workflows.view_workflow")
def workflow_run(request: HttpRequest, pk: int, run_id: int) -> HttpResponse:
    run = lifecycle.reap_if_lost(_visible_run(request, pk, run_id))
    if request.htmx:
        return _run_partial(request, run)
    return render(request, "workflows/workflow_detail.html", _detail_context(request, run.workflow, run))


def _visible_run(request: HttpRequest, pk: int, run_id: int) -> WorkflowRun:
    """A run as its page shows it: a Runner's own only, others 404."""
    return get_object_or_404(access.runs_for(request.user).select_related("workflow", "user", "profile"),
                             pk=run_id, workflow_id=pk)


def _run_partial(request: HttpRequest, run: WorkflowRun) -> HttpResponse:
    response = render(request, "workflows/_workflow_run.html",
                      {"run": run, "sees_steps": access.sees_steps(request.user)})
    if run.is_final:
        response["HX-Trigger"] = "run-finished"  # the runs list refreshes itself
    return response


@require_POST
@_can("workflows.run_workflow")
def cancel_run(request: HttpRequest, pk: int, run_id: int) -> HttpResponse:
    """Cancel a queued or running run: the same runs as its page shows (a Runner's own only)."""
    run = _visible_run(request, pk, run_id)
    with transaction.atomic():
        run = runner.cancel(run)
        record_event(request, "cancel_run", run.workflow, run=run.pk, status=run.status)
    if request.htmx:
        return _run_partial(request, run)
    return redirect("workflows:run_detail", pk=pk, run_id=run.pk)
