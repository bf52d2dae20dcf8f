"""Who may see, run and read what of a workflow.

Builders and Admins see every workflow with its steps and every run. A Runner
sees a workflow's name, description and parameters and the outputs of their own
runs, never its steps nor other users' runs; and may run it only if every check
registered here agrees. Apps above this one register their own checks (the
integrations app: a Runner must be allowed to use every integration the
workflow reads), so this app never imports them.

A check is ``check(user, workflow, profile) -> str``: why ``user`` may not run
``workflow`` under ``profile`` ("" if they may). ``profile`` is None when the
question is whether they may run it at all, under some profile (to list the
workflow and open its page); a run itself is always checked with the profile
it will run under.
"""
from __future__ import annotations

from typing import Callable

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from profiles.models import Profile

from .models import Workflow, WorkflowRun

RunCheck = Callable[[AbstractBaseUser, Workflow, "Profile | None"], str]
_run_checks: list[RunCheck] = []


def register_run_check(check: RunCheck) -> RunCheck:
    """Add a check that returns why a user may not run a workflow under a profile ("" if they may)."""
    if check not in _run_checks:
        _run_checks.append(check)
    return check


def sees_steps(user: AbstractBaseUser) -> bool:
    return user.has_perm("workflows.change_workflow")


def run_refusal(user: AbstractBaseUser, workflow: Workflow, profile: Profile | None = None) -> str:
    """Why ``user`` may not run ``workflow`` under ``profile`` (None: under any), for them to read
    ("" if they may)."""
    if not user.has_perm("workflows.run_workflow"):
        return "Your role does not allow running workflows."
    for check in _run_checks:
        refusal = check(user, workflow, profile)
        if refusal:
            return refusal
    return ""


def workflows_for(user: AbstractBaseUser) -> list[Workflow]:
    """The workflows ``user`` sees listed: all for Builders and Admins, those they may run for Runners."""
    workflows = Workflow.objects.prefetch_related("steps")
    if sees_steps(user):
        return list(workflows)
    return [w for w in workflows if not run_refusal(user, w)]


def runs_for(user: AbstractBaseUser) -> QuerySet[WorkflowRun]:
    """Every run for Builders and Admins; a Runner's own runs for Runners."""
    runs = WorkflowRun.objects.all()
    return runs if sees_steps(user) else runs.filter(user=user)
