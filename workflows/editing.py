"""Saving a workflow from its editor."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from .forms import ParameterFormSet, StepFormSet, WorkflowForm
from .models import Step, Workflow


@transaction.atomic
def save(form: WorkflowForm, steps: StepFormSet, params: ParameterFormSet, user: AbstractBaseUser | None) -> Workflow:
    """Save the workflow with its steps in the posted order; all or nothing."""
    workflow = form.save(commit=False)
    if workflow.pk:
        workflow.revision += 1
    else:
        workflow.created_by = user
    workflow.parameters = [
        {"name": f.cleaned_data["name"], "default": f.cleaned_data.get("default", "")} for f in params.forms
    ]
    workflow.save()
    workflow.steps.all().delete()
    Step.objects.bulk_create([
        Step(workflow=workflow, position=i, name=f.cleaned_data["name"], code=f.cleaned_data["code"],
             timeout_s=f.cleaned_data["timeout_s"])
        for i, f in enumerate(steps.forms)
    ])
    return workflow
