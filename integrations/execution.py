"""Running queries and connection checks: submitted by the web, executed by a worker.

The run's state is its database row. The broker only delivers the row's id, and
the worker claims the row with a conditional update, so a redelivered task or a
run cancelled while queued never executes twice.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import close_old_connections, transaction
from django.utils import timezone

from credtool import crypto
from credtool.masking import mask_text
from workflows.models import Workflow

from . import kinds
from .credentials import fetch, with_credentials
from .kinds.base import CancelToken, Credentials, QueryCancelled, StageError
from .models import ConnectionCheck, Integration, QueryRun, RunStatus

log = logging.getLogger(__name__)


def submit(integration: Integration, sql: str, user: AbstractBaseUser | None) -> QueryRun:
    from .tasks import run_query

    with transaction.atomic():
        run = QueryRun.objects.create(integration=integration, user=user, sql=sql, sent_at=timezone.now())
        transaction.on_commit(lambda: send(run_query, run.pk))
    log.info("query run %s submitted for integration %s", run.pk, integration.pk)
    return run


def send(task: Any, run_id: int) -> bool:
    """Hand a run's id to the broker. If the broker is down the run stays queued and is
    sent again later (resend_lost_runs): the user sees "Queued", never a server error."""
    try:
        task.delay(run_id)
        return True
    except Exception as exc:
        log.warning("could not send run %s to the broker (%s); it will be sent again", run_id, type(exc).__name__)
        return False


def resend_lost_runs() -> int:
    """Send again the queued runs whose message may have been lost (broker restart, broker down
    at submit). A duplicate is harmless: only one worker can claim a queued run."""
    from .tasks import run_query

    cutoff = timezone.now() - timedelta(seconds=settings.RUN_RESEND_AFTER_S)
    stale = list(QueryRun.objects.filter(status=RunStatus.QUEUED, sent_at__lt=cutoff)
                 .order_by("pk").values_list("pk", flat=True)[:500])
    sent = [pk for pk in stale if send(run_query, pk)]
    QueryRun.objects.filter(pk__in=sent, status=RunStatus.QUEUED).update(sent_at=timezone.now())
    return len(sent)


def request_cancel(run: QueryRun) -> QueryRun:
    """Cancel a queued run at once; ask the worker to interrupt a running one."""
    now = timezone.now()
    cancelled_while_queued = QueryRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
        status=RunStatus.CANCELLED, cancel_requested=True, finished_at=now, error="Cancelled before it started."
    )
    if not cancelled_while_queued:
        QueryRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(cancel_requested=True)
    run.refresh_from_db()
    return run


def execute(run_id: int) -> None:
    """Worker side of a query run. Every outcome ends in a final status on the row."""
    claimed = QueryRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=timezone.now(), lease_until=_lease()
    )
    if not claimed:
        log.info("query run %s is no longer queued; skipping", run_id)
        return
    run = QueryRun.objects.select_related("integration__credentials_workflow").get(pk=run_id)
    integration = run.integration
    token = CancelToken()
    cancel_watcher.watch(run_id, token)
    started = time.perf_counter()
    outcome: dict[str, Any]
    secrets: list[str] = []
    try:
        kind = integration.kind_impl

        def query(creds: Credentials) -> Any:
            secrets.extend(str(creds.values[name]) for name in kind.secret_fields() if creds.values.get(name))
            return kind.run_query(
                creds, run.sql,
                max_rows=settings.QUERY_MAX_ROWS,
                timeout_s=integration.statement_timeout_s,
                cancel=token,
                connect_timeout=settings.QUERY_CONNECT_TIMEOUT_S,
                read_only=integration.read_only,
            )

        result = with_credentials(integration, query)
        outcome = dict(
            status=RunStatus.SUCCEEDED, columns=result.columns, rows=result.rows,
            row_count=result.row_count, truncated=result.truncated,
            status_message=result.status_message[:200],
        )
    except QueryCancelled:
        outcome = dict(status=RunStatus.CANCELLED, error="Cancelled while running.")
    except StageError as exc:
        outcome = dict(status=RunStatus.FAILED, error_stage=exc.stage, error=mask_text(exc.message, secrets))
    except Exception as exc:  # a bug of ours: record it, never leave the run "running"
        log.exception("query run %s failed unexpectedly", run_id)
        outcome = dict(status=RunStatus.FAILED, error=f"Internal error ({type(exc).__name__}); see the worker's log.")
    finally:
        cancel_watcher.unwatch(run_id)
    outcome.update(duration_ms=(time.perf_counter() - started) * 1000, finished_at=timezone.now())
    QueryRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(**outcome)
    log.info("query run %s %s in %.1f ms", run_id, outcome["status"], outcome["duration_ms"])


def submit_connection_check(
    kind_slug: str, values: dict[str, Any], integration: Integration | None, user: AbstractBaseUser | None,
    *, workflow: Workflow | None = None,
) -> ConnectionCheck:
    """Queue a check of form values that may not be saved yet."""
    from .tasks import check_connection

    kind = kinds.get(kind_slug)
    secret_names = set(kind.secret_fields())
    with transaction.atomic():
        check = ConnectionCheck.objects.create(
            kind=kind_slug,
            integration=integration,
            user=user,
            credentials_workflow=workflow,
            config={k: v for k, v in values.items() if k not in secret_names},
            secrets_encrypted=crypto.encrypt_json({k: v for k, v in values.items() if k in secret_names and v}),
        )
        check_connection.delay_on_commit(check.pk)
    return check


def execute_connection_check(check_id: int) -> None:
    claimed = ConnectionCheck.objects.filter(pk=check_id, status=RunStatus.QUEUED).update(status=RunStatus.RUNNING)
    if not claimed:
        return
    check = ConnectionCheck.objects.select_related("integration", "credentials_workflow").get(pk=check_id)
    kind = kinds.get(check.kind)
    values = {**check.config, **crypto.decrypt_json(check.secrets_encrypted)}
    if check.integration is not None:
        # A blank secret in the form means "keep the stored one".
        stored = check.integration.secrets()
        for name in kind.secret_fields():
            if not values.get(name) and stored.get(name):
                values[name] = stored[name]
    secrets = [str(values[n]) for n in kind.secret_fields() if values.get(n)]
    try:
        if check.credentials_workflow is not None:
            # "Test connection" with fetched credentials runs the workflow now, never the cache.
            credentials = fetch(check.credentials_workflow, values, integration_id=None, trigger="test-connection")
            secrets += [str(credentials.values[n]) for n in kind.secret_fields() if credentials.values.get(n)]
        else:
            credentials = Credentials(None, values)
        message = kind.test_connection(credentials, connect_timeout=settings.QUERY_CONNECT_TIMEOUT_S)
        status = RunStatus.SUCCEEDED
    except StageError as exc:
        message, status = mask_text(str(exc), secrets), RunStatus.FAILED
    except Exception as exc:
        log.exception("connection check %s failed unexpectedly", check_id)
        message, status = f"Internal error ({type(exc).__name__}); see the worker's log.", RunStatus.FAILED
    # The form's secrets were only needed for this one connection.
    ConnectionCheck.objects.filter(pk=check_id).update(
        status=status, message=message, secrets_encrypted="", finished_at=timezone.now()
    )


WORKER_LOST = ("The worker running this query stopped (it was killed or lost its connection); "
               "the query may or may not have completed on the database.")


def _lease():
    return timezone.now() + timedelta(seconds=settings.RUN_LEASE_S)


def reap_lost_runs(run_ids: list[int] | None = None) -> int:
    """Fail running runs whose worker stopped renewing their lease; returns how many."""
    stale = QueryRun.objects.filter(status=RunStatus.RUNNING, lease_until__lt=timezone.now())
    if run_ids is not None:
        stale = stale.filter(pk__in=run_ids)
    return stale.update(status=RunStatus.FAILED, error_stage="", error=WORKER_LOST, finished_at=timezone.now())


class CancelWatcher:
    """One thread per worker process: notices cancel requests for its running queries,
    renews their leases, and fails runs whose worker has gone."""

    interval_s = 0.25

    def __init__(self) -> None:
        self._tokens: dict[int, CancelToken] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="run-watcher", daemon=True)
                self._thread.start()

    def watch(self, run_id: int, token: CancelToken) -> None:
        with self._lock:
            self._tokens[run_id] = token
        self.start()

    def unwatch(self, run_id: int) -> None:
        with self._lock:
            self._tokens.pop(run_id, None)

    def _loop(self) -> None:
        last_renewal = 0.0
        while True:
            time.sleep(self.interval_s)
            with self._lock:
                ids = list(self._tokens)
            now = time.monotonic()
            if now - last_renewal >= settings.RUN_LEASE_S / 3:
                last_renewal = now
                try:
                    if ids:
                        QueryRun.objects.filter(pk__in=ids, status=RunStatus.RUNNING).update(lease_until=_lease())
                    reaped = reap_lost_runs()
                    if reaped:
                        log.warning("failed %s query run(s) whose worker was lost", reaped)
                    resent = resend_lost_runs()
                    if resent:
                        log.warning("sent %s queued query run(s) to the broker again", resent)
                except Exception:
                    log.warning("could not renew run leases", exc_info=True)
                    close_old_connections()
            if not ids:
                continue
            try:
                requested = list(
                    QueryRun.objects.filter(pk__in=ids, cancel_requested=True).values_list("pk", flat=True)
                )
            except Exception:
                log.warning("cancel watcher could not read run states", exc_info=True)
                close_old_connections()
                continue
            for run_id in requested:
                with self._lock:
                    token = self._tokens.pop(run_id, None)
                if token is not None:
                    log.info("cancelling query run %s", run_id)
                    token.cancel()


cancel_watcher = CancelWatcher()
