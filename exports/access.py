"""Who sees which export: the rule of query runs (``integrations.access.runs_for``), and a
Runner only the exports they asked for themselves."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from integrations.access import can_configure, runs_for

from .models import ExportRun


def exports_for(user: AbstractBaseUser) -> QuerySet[ExportRun]:
    exports = ExportRun.objects.filter(query_run__in=runs_for(user))
    return exports if can_configure(user) else exports.filter(user=user)
