"""A worker's first step on a query run: claim it and load what it runs on, cheaply.

A quick query spent more of the worker's CPU in the ORM, building the statements
that claim its row and load its integration, configuration, workflow and profile,
than in the query itself (py-spy: the one ``select_related`` load was a third of the
worker's CPU). The claim is now one UPDATE … RETURNING; the objects are kept in
this process and checked against their rows in one plain statement, and loaded
through the ORM again only when one changed: every save() of an integration, a
configuration or a workflow sets its ``updated_at`` (and an edit through their forms
bumps the revisions the credential caches are keyed by), and a profile's key never
changes (its name is compared).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from django.db import connection

from profiles.models import Profile
from runs import lifecycle
from workflows.models import Workflow

from .models import Configuration, Integration, QueryRun

KEEP_AT_MOST = 1000  # (configuration, profile) pairs; past it the cache starts again


@dataclass(frozen=True)
class ClaimedRun:
    sql: str
    integration: Integration
    configuration: Configuration
    profile: Profile | None


def claim(run_id: int) -> ClaimedRun | None:
    """The run, now "running" and this worker's; None if it was claimed, cancelled or is gone."""
    row = lifecycle.claim_returning(QueryRun, run_id, ("sql", "integration_id", "configuration_id", "profile_id"))
    if row is None:
        return None
    sql, integration_id, configuration_id, profile_id = row
    if configuration_id is not None:
        try:
            configuration, profile = _loaded.get(configuration_id, profile_id)
            return ClaimedRun(sql, configuration.integration, configuration, profile)
        except Configuration.DoesNotExist:
            pass
    # Deleted since it was submitted: whichever answers for the profile now (rare: not kept).
    integration = Integration.objects.get(pk=integration_id)
    profile = Profile.objects.filter(pk=profile_id).first() if profile_id is not None else None
    return ClaimedRun(sql, integration, integration.configuration_for(profile), profile)


class _Loaded:
    def __init__(self) -> None:
        self._entries: dict[tuple[int, int | None], tuple[tuple[Any, ...], Configuration, Profile | None]] = {}
        self._lock = threading.Lock()

    def get(self, configuration_id: int, profile_id: int | None) -> tuple[Configuration, Profile | None]:
        key = (configuration_id, profile_id)
        markers = _markers(configuration_id, profile_id)
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[0] == markers:
            return entry[1], entry[2]
        # Read after the markers: a change in between only costs one more load next time.
        configuration = Configuration.objects.select_related("integration", "credentials_workflow").get(
            pk=configuration_id)
        profile = Profile.objects.get(pk=profile_id) if profile_id is not None else None
        with self._lock:
            if len(self._entries) >= KEEP_AT_MOST:
                self._entries.clear()
            self._entries[key] = (markers, configuration, profile)
        return configuration, profile


def _markers(configuration_id: int, profile_id: int | None) -> tuple[Any, ...]:
    """What changes when any of the objects a run uses is saved, in one plain statement."""
    qn = connection.ops.quote_name
    configuration, integration = Configuration._meta.db_table, Integration._meta.db_table
    workflow, profile = Workflow._meta.db_table, Profile._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.{qn('revision')}, c.{qn('updated_at')}, i.{qn('updated_at')}, w.{qn('revision')}, "
            f"w.{qn('updated_at')}, "
            f"(SELECT p.{qn('name')} FROM {qn(profile)} p WHERE p.{qn('id')} = %s) "
            f"FROM {qn(configuration)} c JOIN {qn(integration)} i ON i.{qn('id')} = c.{qn('integration_id')} "
            f"LEFT JOIN {qn(workflow)} w ON w.{qn('id')} = c.{qn('credentials_workflow_id')} "
            f"WHERE c.{qn('id')} = %s", [profile_id, configuration_id])
        row = cursor.fetchone()
    if row is None:
        raise Configuration.DoesNotExist(f"configuration {configuration_id} is gone")
    return tuple(row)


_loaded = _Loaded()
