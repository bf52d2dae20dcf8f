"""Who may see and use which integration, under which profile, and whose runs: the object-level
half of the roles.

Builders and Admins see and use every integration, under every profile, and
every run. A Runner sees only the integrations shared with them, may query each
only under the profiles it is shared with them for, and of their runs sees only
their own: an integration not shared, a profile not shared, or another user's
run, CSV or cancel URL, does not exist for them (404). A Runner may run a
workflow under a profile only if they may use, under that profile, every
integration whose credentials it fetches and every integration its steps query
(see ``workflow_refusal``).
"""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from profiles.models import Profile
from workflows.models import Workflow

from .models import Integration, QueryRun


def can_configure(user: AbstractBaseUser) -> bool:
    return user.has_perm("integrations.change_integration")


def integrations_for(user: AbstractBaseUser) -> QuerySet[Integration]:
    """Builders and Admins see every integration; Runners those shared with them (under any profile)."""
    if can_configure(user):
        return Integration.objects.all()
    if user.has_perm("integrations.view_integration"):
        return Integration.objects.filter(pk__in=user.integration_shares.values("integration"))
    return Integration.objects.none()


def profiles_for(user: AbstractBaseUser, integration: Integration) -> QuerySet[Profile]:
    """The profiles ``user`` may query ``integration`` under."""
    if can_configure(user):
        return Profile.objects.all()
    if user.has_perm("integrations.view_integration"):
        return Profile.objects.filter(pk__in=integration.shares.filter(user=user).values("profile"))
    return Profile.objects.none()


def runs_for(user: AbstractBaseUser) -> QuerySet[QueryRun]:
    """Builders and Admins see every run; Runners their own, on integrations still shared with them."""
    runs = QueryRun.objects.filter(integration__in=integrations_for(user))
    return runs if can_configure(user) else runs.filter(user=user)


def workflow_refusal(user: AbstractBaseUser, workflow: Workflow, profile: Profile | None = None) -> str:
    """Why ``user`` may not run ``workflow`` under ``profile`` because of the integrations it reads
    ("" if they may; with no profile, under any profile they were given).

    A credentials workflow returns an integration's configuration (host, user
    name, masked secrets): running it is reading that integration. An
    Integration step queries its integration: running it is using it."""
    if can_configure(user):
        return ""
    shares = user.integration_shares.all()
    if profile is not None:
        shares = shares.filter(profile=profile)
    reads = Integration.objects.filter(
        Q(configurations__credentials_workflow=workflow) | Q(workflow_steps__workflow=workflow))
    if reads.exclude(pk__in=shares.values("integration")).exists():
        where = f" under {profile.name}" if profile is not None else ""
        return (f"This workflow uses an integration that is not shared with you{where} (it fetches its "
                "credentials or queries it), so it cannot run for you. Ask a Builder to share that "
                "integration with you.")
    return ""
