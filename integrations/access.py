"""Who may see and use which integration, and whose runs: the object-level half of the roles.

Builders and Admins see and use every integration and every run. A Runner sees
only the integrations shared with them, and of their runs only their own: an
integration not shared, or another user's run, CSV or cancel URL, does not
exist for them (404). A Runner may run a workflow only if they may use every
integration it reads (see ``workflow_refusal``).
"""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from workflows.models import Workflow

from .models import Integration, QueryRun


def can_configure(user: AbstractBaseUser) -> bool:
    return user.has_perm("integrations.change_integration")


def integrations_for(user: AbstractBaseUser) -> QuerySet[Integration]:
    """Builders and Admins see every integration; Runners those shared with them."""
    if can_configure(user):
        return Integration.objects.all()
    if user.has_perm("integrations.view_integration"):
        return Integration.objects.filter(shared_with=user)
    return Integration.objects.none()


def runs_for(user: AbstractBaseUser) -> QuerySet[QueryRun]:
    """Builders and Admins see every run; Runners their own, on integrations still shared with them."""
    runs = QueryRun.objects.filter(integration__in=integrations_for(user))
    return runs if can_configure(user) else runs.filter(user=user)


def workflow_refusal(user: AbstractBaseUser, workflow: Workflow) -> str:
    """Why ``user`` may not run ``workflow`` because of the integrations it reads ("" if they may).

    A credentials workflow returns an integration's configuration (host, user
    name, masked secrets): running it is reading that integration."""
    if can_configure(user):
        return ""
    readable = integrations_for(user).values("pk")
    if workflow.integrations.exclude(pk__in=readable).exists():
        return ("This workflow fetches the credentials of an integration that is not shared with you, "
                "so it cannot run for you. Ask a Builder to share that integration with you.")
    return ""
