"""Saving a workflow from its editor, and saying what changed."""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from profiles.models import Profile

from . import schedules
from .forms import ParameterFormSet, StepFormSet, WorkflowForm
from .models import Step, Workflow


@transaction.atomic
def save(form: WorkflowForm, steps: StepFormSet, params: ParameterFormSet,
         user: AbstractBaseUser | None) -> tuple[Workflow, list[str]]:
    """Save the workflow with its steps in the posted order and its Schedule's PeriodicTask, all or
    nothing; returns it and the names of what changed (name, description, steps, parameters,
    schedule, schedule_profile) compared with what was stored."""
    workflow = form.save(commit=False)
    before = _snapshot(Workflow.objects.get(pk=workflow.pk)) if workflow.pk else {}
    parameters = [{"name": f.cleaned_data["name"], "default": f.cleaned_data.get("default", "")} for f in params.forms]
    new_steps = [(f.cleaned_data["name"], f.cleaned_data["step_type"], f.cleaned_data["integration"],
                  f.cleaned_data["request"], f.cleaned_data["timeout_s"]) for f in steps.forms]
    after = {"name": workflow.name, "description": workflow.description, "parameters": parameters,
             "steps": new_steps, "schedule": workflow.schedule, "schedule_profile": workflow.schedule_profile_id}
    changed = sorted(key for key, value in after.items() if before.get(key) != value
                     and (workflow.pk or value not in ("", [], None)))
    if workflow.pk and not changed:
        return workflow, []  # nothing changed: cached credentials fetched with it stay valid
    # When it runs is no part of what it does: a new Schedule keeps cached credentials.
    if workflow.pk and set(changed) - {"schedule", "schedule_profile"}:
        workflow.revision += 1
    else:
        workflow.created_by = user
    workflow.parameters = parameters
    workflow.save()
    workflow.steps.all().delete()
    Step.objects.bulk_create([
        Step(workflow=workflow, position=i, name=name, step_type=step_type, integration_id=integration_id, code=code,
             timeout_s=timeout_s)
        for i, (name, step_type, integration_id, code, timeout_s) in enumerate(new_steps)
    ])
    schedules.sync(workflow)
    return workflow, changed


def _snapshot(workflow: Workflow) -> dict[str, Any]:
    return {"name": workflow.name, "description": workflow.description, "parameters": workflow.parameters,
            "steps": [(s.name, s.step_type, s.integration_id, s.code, s.timeout_s) for s in workflow.steps.all()],
            # None (saved before schedules, or its profile deleted) means the default: no change.
            "schedule": workflow.schedule, "schedule_profile": workflow.schedule_profile_id or _default_profile_pk()}


def _default_profile_pk() -> int | None:
    profile = Profile.objects.default()
    return profile.pk if profile else None
