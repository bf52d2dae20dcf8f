"""Exports: submitted by the web, executed by a worker through the query's own path.

The worker runs the result's statement again (alone) as a query does
(``integrations.execution.execute``): the run's configuration and profile,
fetched credentials with their cache and rotation retry
(``with_credentials``), the kind's connection with the integration's
read-only setting and timeout, the destinations check, the session reset,
cancel. The kind streams the rows (``Kind.export``) into a private file, a
batch at a time: memory stays a batch, whatever the result.
"""
from __future__ import annotations

import io
import logging
import time
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from integrations.credentials import with_credentials
from integrations.kinds.base import CancelToken, Credentials, Exported, QueryCancelled, StageError
from integrations.kinds.cells import Cell
from integrations.models import QueryRun
from runs import lifecycle
from runs.models import RunStatus

from . import files
from .models import ExportRun
from .writers import writer_for

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.5  # how often a running export writes its row count for the page


def exported_statement(run: QueryRun, number: int) -> str | None:
    """The text an export of result ``number`` runs again, or None if that result cannot be exported
    (no such result, no rows and columns, the run did not succeed)."""
    if run.status != RunStatus.SUCCEEDED or not 1 <= number <= len(run.results):
        return None
    result = run.results[number - 1]
    if not result.get("columns"):
        return None
    # One statement: the run's text as written (a REST result's "statement" is the URL it went to).
    return run.sql if len(run.results) == 1 else result["statement"]


def submit(run: QueryRun, number: int, fmt: str, user: AbstractBaseUser | None) -> ExportRun:
    """Queue an export of result ``number`` of ``run``, with today's cap (call in a transaction)."""
    now = timezone.now()
    with transaction.atomic():
        export = ExportRun.objects.create(
            query_run=run, statement_number=number, format=fmt, user=user, profile=run.profile,
            max_rows=settings.EXPORT_MAX_ROWS, expires_at=now + files.KEEP, sent_at=now)
        lifecycle.submit(export)
    log.info("export %s of query run %s submitted", export.pk, run.pk)
    return export


class _Progress:
    """Counts rows and writes the count to the row at most every ``PROGRESS_EVERY_S``."""

    def __init__(self, export_id: int) -> None:
        self.export_id, self.rows, self.saved_at = export_id, 0, time.monotonic()

    def add(self, rows: int) -> None:
        self.rows += rows
        now = time.monotonic()
        if now - self.saved_at >= PROGRESS_EVERY_S:
            self.saved_at = now
            ExportRun.objects.filter(pk=self.export_id, status=RunStatus.RUNNING).update(rows_written=self.rows)


def execute(export_id: int) -> None:
    """Worker side of an export. Every outcome ends in a final status on the row; a file is left
    behind only by a succeeded export."""
    try:
        files.purge()  # the sweep, where exports happen: no schedule needed for files to go
    except Exception:
        log.warning("could not delete expired exports", exc_info=True)
    if not lifecycle.claim(ExportRun, export_id):
        log.info("export %s is no longer queued; skipping", export_id)
        return
    export = ExportRun.objects.select_related(
        "query_run__integration", "query_run__configuration__credentials_workflow", "profile").get(pk=export_id)
    run = export.query_run
    integration = run.integration
    configuration = run.configuration or integration.configuration_for(export.profile)
    statement = exported_statement(run, export.statement_number) or ""
    try:
        path, fd = files.create(export.pk, export.format)
    except OSError as exc:  # a full or unwritable disk: say so rather than leave it to the lease
        log.error("export %s: cannot create its file (%s)", export_id, exc)
        lifecycle.finish(ExportRun, export_id, RunStatus.FAILED,
                         error=f"The worker could not create the export's file ({exc.strerror or type(exc).__name__}).")
        return
    ExportRun.objects.filter(pk=export_id).update(file_path=str(path))
    token = CancelToken()
    started = time.perf_counter()
    outcome: dict[str, Any]
    with lifecycle.watcher.working_on(ExportRun, export_id, token), \
            io.open(fd, "w", encoding="utf-8", newline="") as handle:
        try:
            kind = integration.kind_impl

            def export_rows(creds: Credentials) -> Exported:
                # A second call (credentials refetched after a refused login) starts the file again.
                handle.seek(0)
                handle.truncate()
                writer = writer_for(export.format, handle)
                progress = _Progress(export_id)

                def write(columns: list[str], rows: list[list[Cell]]) -> None:
                    writer.write(columns, rows)
                    progress.add(len(rows))

                exported = kind.export(
                    creds, statement, write=write, max_rows=export.max_rows,
                    timeout_s=integration.statement_timeout_s, cancel=token,
                    connect_timeout=settings.QUERY_CONNECT_TIMEOUT_S, read_only=integration.read_only)
                writer.close()
                return exported

            if not statement:
                raise StageError("query", "this result cannot be exported")
            exported = with_credentials(configuration, export.profile, export_rows)
            outcome = dict(status=RunStatus.SUCCEEDED, rows_written=exported.row_count, truncated=exported.truncated)
        except QueryCancelled:
            outcome = dict(status=RunStatus.CANCELLED, error="Cancelled while exporting.")
        except StageError as exc:  # its message is masked by with_credentials
            outcome = dict(status=RunStatus.FAILED, error_stage=exc.stage, error=exc.message)
        except Exception as exc:  # a bug of ours: record it, never leave the export "running"
            log.exception("export %s failed unexpectedly", export_id)
            outcome = dict(status=RunStatus.FAILED, error=f"Internal error ({type(exc).__name__}); see the worker's log.")
    duration_ms = (time.perf_counter() - started) * 1000
    status = outcome.pop("status")
    if status == RunStatus.SUCCEEDED:
        outcome.update(size_bytes=path.stat().st_size, expires_at=timezone.now() + files.KEEP)
    else:
        files.remove(path)
        outcome["file_path"] = ""
    if not lifecycle.finish(ExportRun, export_id, status, duration_ms=duration_ms, **outcome):
        files.remove(path)  # reaped as lost meanwhile: nobody will download it
        ExportRun.objects.filter(pk=export_id).update(file_path="")
    log.info("export %s %s: %s rows in %.1f ms", export_id, status, outcome.get("rows_written", "no"), duration_ms)
