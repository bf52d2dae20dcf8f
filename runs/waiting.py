"""Waiting in the request for a run to finish: the run's row is polled, never the broker.

The API waits as its caller asks (``?wait=``). The console's Run waits briefly too, so
a quick query's result comes back in the answer to its POST, without a round of page
polls (each a request that pays for the session, the permissions and a render). Both
wait only while one of the process's waiting slots is free, so waiting requests never
hold every thread of the web server: without a slot the page polls as before, and the
API answers 202 with the url to poll.
"""
from __future__ import annotations

import threading
import time
from typing import TypeVar

from django.conf import settings
from django.db import connection
from django.utils import timezone

from credtool import rows
from runs import lifecycle, workers
from runs.models import FINAL_STATUSES, BackgroundRun, RunStatus

R = TypeVar("R", bound=BackgroundRun)
SHORTEST_PAUSE_S = 0.002
LONGEST_PAUSE_S = 0.25
UNSERVED_CHECK_AFTER_S = 0.1


def until_final(run: R, wait_s: float, *, unserved_check_after_s: float | None = None) -> R:
    """``run`` once it has finished, or as it is after ``wait_s`` seconds (0: as it is now).

    It looks again after half the time waited so far (at least 2 ms, at most a quarter of a second):
    a run is seen at most half as late again as it finished, and a quick query (a few to tens of
    milliseconds) a few milliseconds late, for a handful of looks; each costs one small statement,
    and the whole row is read once, when it is final. A run whose worker died is reaped here,
    as a page polling it would. With ``unserved_check_after_s``, a run still queued by then is
    looked at once more: if no live worker serves its profile, waiting would only delay the
    page that says so."""
    started = time.monotonic()
    deadline = started + wait_s
    while True:
        status, lease_expired = _status(run)
        if status in FINAL_STATUSES or (lease_expired and lifecycle.reap_lost_runs(type(run), [run.pk])):
            return _reloaded(run)
        run.status = status
        now = time.monotonic()
        left = deadline - now
        if left <= 0:
            return run
        if (unserved_check_after_s is not None and now - started >= unserved_check_after_s
                and status == RunStatus.QUEUED):
            if workers.unserved_message(run):
                return run
            unserved_check_after_s = None
        time.sleep(min(max(SHORTEST_PAUSE_S, (now - started) / 2), LONGEST_PAUSE_S, left))


def _status(run: BackgroundRun) -> tuple[str, bool]:
    """The run's status, and whether its lease has expired, in one plain statement: this is
    asked every few milliseconds while a request waits, and the ORM would spend ten times as
    long building the query as the database spends answering it."""
    model, qn = type(run), connection.ops.quote_name
    lease = qn(model._meta.get_field("lease_until").column)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {qn('status')}, CASE WHEN {lease} < %s THEN 1 ELSE 0 END "
                       f"FROM {qn(model._meta.db_table)} WHERE {qn(model._meta.pk.column)} = %s", [now, run.pk])
        row = cursor.fetchone()
    if row is None:
        raise model.DoesNotExist(f"{model._meta.model_name} {run.pk} is gone")
    return row[0], bool(row[1])


def _reloaded(run: R) -> R:
    """The final row's fields, keeping the objects it points to (already loaded for the page)."""
    fields = [f for f in run._meta.concrete_fields if not f.is_relation]
    row = rows.values(type(run), run.pk, fields)
    if row is None:
        raise type(run).DoesNotExist(f"{run._meta.model_name} {run.pk} is gone")
    for field, value in zip(fields, row):
        setattr(run, field.attname, value)
    return run


_slots = threading.BoundedSemaphore(settings.WEB_WAITING_SLOTS)


def until_final_if_free(run: R, wait_s: float, *, unserved_check_after_s: float | None = None) -> R:
    """``until_final`` when a waiting slot of this process is free; else ``run`` as it is."""
    if not _slots.acquire(blocking=False):
        return run
    try:
        return until_final(run, wait_s, unserved_check_after_s=unserved_check_after_s)
    finally:
        _slots.release()
