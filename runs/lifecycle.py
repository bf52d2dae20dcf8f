"""The life of every background run: submit, send, claim, lease, finish, cancel, reap and resend.

Every kind of run (``runs.models.BackgroundRun``: query runs, workflow runs,
credential previews, Test connection) goes through these functions, so each
survives the same faults the same way:

- **submit** sends the run's id after the transaction that created it commits,
  to the queue of its profile's workers (``runs.workers``); if the broker is
  down the run stays "Queued" (never a server error) and is **resent** once the
  broker is back, by whichever worker notices first, provided some live worker
  serves its profile;
- a worker **claims** a queued run with a conditional update, so a redelivered
  message or a run cancelled while queued never executes (twice);
- while it works, the worker's ``watcher`` thread **renews the run's lease**;
  if the worker dies, any worker (or a page polling the run) **reaps** it: the
  run ends as failed within the lease time, saying its worker was lost;
- the same thread keeps the worker's **heartbeat**, which tells the pages of
  queued runs whether any worker serves their profile;
- **cancel** ends a queued run at once and asks the worker of a running one,
  whose watcher calls the run's ``CancelToken``.
"""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator, TypeVar

from django.apps import apps
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from . import workers
from .models import WORKER_LOST, BackgroundRun, RunStatus

log = logging.getLogger(__name__)
R = TypeVar("R", bound=BackgroundRun)


@dataclass
class CancelToken:
    """Lets another thread interrupt a running run (e.g. cancel its statement on the server)."""

    _callback: Callable[[], None] | None = None
    cancelled: bool = False

    def on_cancel(self, callback: Callable[[], None] | None) -> None:
        self._callback = callback

    def cancel(self) -> None:
        self.cancelled = True
        if self._callback is not None:
            self._callback()


def run_models() -> list[type[BackgroundRun]]:
    return [model for model in apps.get_models() if issubclass(model, BackgroundRun)]


def lease_deadline() -> datetime:
    return timezone.now() + timedelta(seconds=settings.RUN_LEASE_S)


# --- Web side -------------------------------------------------------------------

def submit(run: BackgroundRun) -> None:
    """Send ``run`` to a worker once the current transaction commits (call it in the one that created the row)."""
    # The profile is usually on the row already: no query to find its queue.
    queue = workers.queue_name(run.profile.key) if run.profile_id is not None else None
    transaction.on_commit(lambda: send(type(run), run.pk, queue))


def send(model: type[BackgroundRun], run_id: int, queue: str | None = None) -> bool:
    """Hand a run's id to the broker, on its profile's queue (``queue`` when the caller knows it).
    If the broker is down the run stays queued and is sent again later (``resend_lost_runs``):
    the user sees "Queued", never a server error."""
    try:
        publish(model.task_name, run_id, queue or workers.queue_of(model, run_id))
        return True
    except Exception as exc:
        log.warning("could not send %s %s to the broker (%s); it will be sent again",
                    model._meta.model_name, run_id, type(exc).__name__)
        return False


def publish(task_name: str | None, run_id: int, queue: str) -> None:
    """The one place that talks to the broker: the task's name and the row's id, on the queue
    of the workers that serve the run's profile; nothing else."""
    if task_name is None:
        raise ValueError("this kind of run is not executed through the broker")
    from credtool.celery import app

    app.send_task(task_name, args=[run_id], queue=queue)


def request_cancel(run: R, *, queued_message: str = "Cancelled before it started.") -> R:
    """Cancel a queued run at once; ask the worker of a running one to stop it."""
    model = type(run)
    cancelled_while_queued = model.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
        status=RunStatus.CANCELLED, cancel_requested=True, finished_at=timezone.now(),
        **model.error_fields(queued_message))
    if not cancelled_while_queued:
        model.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(cancel_requested=True)
    run.refresh_from_db()
    return run


def cancel_queued_runs_of(sender: object, instance: Any, **kwargs: object) -> None:
    """Before a profile is deleted: its queued runs end as cancelled, saying why."""
    message = f"Cancelled: its profile {instance.name} was deleted before it started."
    for model in run_models():
        model.objects.filter(profile=instance, status=RunStatus.QUEUED).update(
            status=RunStatus.CANCELLED, finished_at=timezone.now(), **model.error_fields(message))


def reap_if_lost(run: R) -> R:
    """For a page polling ``run``: if its worker died, end it now rather than when another worker notices."""
    if run.lease_expired and reap_lost_runs(type(run), [run.pk]):
        run.refresh_from_db()
    return run


# --- Worker side ----------------------------------------------------------------

def claim(model: type[BackgroundRun], run_id: int) -> bool:
    """Take a queued run: True for exactly one caller, False if it was claimed, cancelled or is gone."""
    return bool(model.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=timezone.now(), lease_until=lease_deadline()))


def claim_returning(model: type[BackgroundRun], run_id: int, fields: tuple[str, ...]) -> tuple[Any, ...] | None:
    """``claim``, also reading ``fields`` (column names) of the claimed row in the same statement
    (UPDATE … RETURNING, which PostgreSQL and SQLite 3.35+ have); None if it was not claimed.

    It is the first statement of every query a worker runs: plain SQL, because building it
    through the ORM cost more CPU than the statement itself."""
    if not connection.features.can_return_columns_from_insert:  # an older SQLite: two statements
        if not claim(model, run_id):
            return None
        return model.objects.filter(pk=run_id).values_list(*fields).get()
    qn, adapt = connection.ops.quote_name, connection.ops.adapt_datetimefield_value
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {qn(model._meta.db_table)} SET {qn('status')} = %s, {qn('started_at')} = %s, "
            f"{qn('lease_until')} = %s WHERE {qn(model._meta.pk.column)} = %s AND {qn('status')} = %s "
            f"RETURNING {', '.join(qn(f) for f in fields)}",
            [RunStatus.RUNNING, adapt(now), adapt(lease_deadline()), run_id, RunStatus.QUEUED])
        row = cursor.fetchone()
    return tuple(row) if row is not None else None


def start_running(model: type[R], **fields: Any) -> R:
    """Create a run that this worker executes now, without the broker (e.g. a credentials fetch)."""
    now = timezone.now()
    return model.objects.create(status=RunStatus.RUNNING, started_at=now, lease_until=lease_deadline(), **fields)


def finish(model: type[BackgroundRun], run_id: int, status: str, **fields: Any) -> bool:
    """Record a running run's outcome; False if it was no longer running (reaped as lost meanwhile).

    The last statement of every run: plain SQL (values prepared by their fields, as the ORM's
    update prepares them), for the same reason as ``claim_returning``."""
    values = {"status": status, "finished_at": timezone.now(), "lease_until": None, **fields}
    qn, columns, params = connection.ops.quote_name, [], []
    for name, value in values.items():
        field = model._meta.get_field(name)
        columns.append(f"{qn(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {qn(model._meta.db_table)} SET {', '.join(columns)} "
                       f"WHERE {qn(model._meta.pk.column)} = %s AND {qn('status')} = %s",
                       [*params, run_id, RunStatus.RUNNING])
        return cursor.rowcount > 0


def reap_lost_runs(model: type[BackgroundRun] | None = None, run_ids: list[int] | None = None) -> int:
    """Fail running runs whose worker stopped renewing their lease; returns how many."""
    reaped = 0
    for each in [model] if model is not None else run_models():
        stale = each.objects.filter(status=RunStatus.RUNNING, lease_until__lt=timezone.now())
        if run_ids is not None:
            stale = stale.filter(pk__in=run_ids)
        reaped += stale.update(status=RunStatus.FAILED, finished_at=timezone.now(), **each.error_fields(WORKER_LOST))
    return reaped


def resend_lost_runs() -> int:
    """Send again the queued runs whose message may have been lost. A duplicate is
    harmless: only one worker can claim a queued run.

    Only runs of profiles that some live worker serves: the others wait for a worker
    to start (their page says so), and resending them every round would only pile up
    copies in a queue nobody reads; once such a worker beats, they are sent again."""
    cutoff = timezone.now() - timedelta(seconds=settings.RUN_RESEND_AFTER_S)
    default_key = workers.default_profile_key()
    served = workers.live_coverage().runs_filter(default_key)
    total = 0
    for model in run_models():
        if model.task_name is None:
            continue
        queued = model.objects.filter(status=RunStatus.QUEUED, sent_at__lt=cutoff)
        if served is not None:
            queued = queued.filter(served)
        stale = list(queued.order_by("pk").values_list("pk", "profile__key")[:500])
        sent = [pk for pk, key in stale if send(model, pk, workers.queue_name(key or default_key))]
        model.objects.filter(pk__in=sent, status=RunStatus.QUEUED).update(sent_at=timezone.now())
        total += len(sent)
    return total


class Watcher:
    """One thread per worker process: renews the leases of the runs it works on, notices
    cancel requests for them, fails runs whose worker was lost, resends lost messages and
    keeps the worker's heartbeat (``node``, set when the process is a Celery worker)."""

    interval_s = 0.25

    def __init__(self) -> None:
        self._watched: dict[tuple[type[BackgroundRun], int], CancelToken | None] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.node: workers.ThisWorker | None = None

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="run-watcher", daemon=True)
                self._thread.start()

    @contextmanager
    def working_on(self, model: type[BackgroundRun], run_id: int,
                   token: CancelToken | None = None) -> Iterator[None]:
        """Keep the run's lease while the block runs; ``token`` is cancelled if a user asks."""
        with self._lock:
            self._watched[(model, run_id)] = token
        self.start()
        try:
            yield
        finally:
            with self._lock:
                self._watched.pop((model, run_id), None)

    def _loop(self) -> None:
        last_renewal = 0.0
        while True:
            time.sleep(self.interval_s)
            with self._lock:
                watched = dict(self._watched)
            now = time.monotonic()
            if now - last_renewal >= settings.RUN_LEASE_S / 3:
                last_renewal = now
                self._renew_reap_resend(watched)
            if any(token is not None for token in watched.values()):
                self._notice_cancels(watched)

    def _renew_reap_resend(self, watched: dict[tuple[type[BackgroundRun], int], CancelToken | None]) -> None:
        try:
            by_model: dict[type[BackgroundRun], list[int]] = {}
            for model, run_id in watched:
                by_model.setdefault(model, []).append(run_id)
            for model, ids in by_model.items():
                model.objects.filter(pk__in=ids, status=RunStatus.RUNNING).update(lease_until=lease_deadline())
            if self.node is not None:
                self.node.beat()  # before resending: the runs it serves count as served
            reaped = reap_lost_runs()
            if reaped:
                log.warning("failed %s run(s) whose worker was lost", reaped)
            resent = resend_lost_runs()
            if resent:
                log.warning("sent %s queued run(s) to the broker again", resent)
        except Exception:
            log.warning("the run watcher could not renew leases or the heartbeat", exc_info=True)
            close_old_connections()

    def _notice_cancels(self, watched: dict[tuple[type[BackgroundRun], int], CancelToken | None]) -> None:
        by_model: dict[type[BackgroundRun], list[int]] = {}
        for (model, run_id), token in watched.items():
            if token is not None and not token.cancelled:
                by_model.setdefault(model, []).append(run_id)
        try:
            requested = [(model, pk) for model, ids in by_model.items()
                         for pk in model.objects.filter(pk__in=ids, cancel_requested=True).values_list("pk", flat=True)]
        except Exception:
            log.warning("the run watcher could not read cancel requests", exc_info=True)
            close_old_connections()
            return
        for key in requested:
            token = watched.get(key)
            if token is not None:
                log.info("cancelling %s %s", key[0]._meta.model_name, key[1])
                token.cancel()


watcher = Watcher()
