"""Running queries and connection checks: submitted by the web, executed by a worker.

Both are background runs (``runs.lifecycle``): the row is the run's state, the
broker only delivers its id, the worker claims it, keeps its lease while it
works, and records the outcome.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from credtool import crypto
from credtool.masking import mask_text
from profiles.models import Profile
from runs import lifecycle
from runs.models import RunStatus
from workflows.models import Workflow

from . import kinds, run_loading
from .credentials import fetch, masked, with_credentials
from .kinds.base import CancelToken, Credentials, QueryCancelled, StageError, StatementResult
from .models import Configuration, ConnectionCheck, Integration, QueryRun
from .secrets_policy import stored_secret_for

log = logging.getLogger(__name__)


def submit(integration: Integration, sql: str, user: AbstractBaseUser | None, profile: Profile) -> QueryRun:
    """Queue ``sql`` on the configuration that answers for ``profile``."""
    with transaction.atomic():
        run = QueryRun.objects.create(integration=integration, configuration=integration.configuration_for(profile),
                                      profile=profile, user=user, sql=sql, sent_at=timezone.now())
        lifecycle.submit(run)
    log.info("query run %s submitted for integration %s", run.pk, integration.pk)
    return run


def execute(run_id: int) -> None:
    """Worker side of a query run. Every outcome ends in a final status on the row."""
    run = run_loading.claim(run_id)
    if run is None:
        log.info("query run %s is no longer queued; skipping", run_id)
        return
    integration, configuration = run.integration, run.configuration
    token = CancelToken()
    started = time.perf_counter()
    outcome: dict[str, Any]
    with lifecycle.watcher.working_on(QueryRun, run_id, token):
        try:
            kind = integration.kind_impl

            def query(creds: Credentials) -> list[StatementResult]:
                return kind.run_query(
                    creds, run.sql,
                    max_rows=settings.QUERY_MAX_ROWS,
                    timeout_s=integration.statement_timeout_s,
                    cancel=token,
                    connect_timeout=settings.QUERY_CONNECT_TIMEOUT_S,
                    read_only=integration.read_only,
                )

            outcome = dict(status=RunStatus.SUCCEEDED, **_results_fields(with_credentials(configuration, run.profile, query)))
        except QueryCancelled:
            outcome = dict(status=RunStatus.CANCELLED, error="Cancelled while running.")
        except StageError as exc:
            outcome = dict(status=RunStatus.FAILED, error_stage=exc.stage, error=exc.message,
                           **_results_fields(exc.results))
        except Exception as exc:  # a bug of ours: record it, never leave the run "running"
            log.exception("query run %s failed unexpectedly", run_id)
            outcome = dict(status=RunStatus.FAILED, error=f"Internal error ({type(exc).__name__}); see the worker's log.")
    duration_ms = (time.perf_counter() - started) * 1000
    status = outcome.pop("status")
    lifecycle.finish(QueryRun, run_id, status, duration_ms=duration_ms, **outcome)
    log.info("query run %s %s in %.1f ms", run_id, status, duration_ms)


def _results_fields(results: list[StatementResult]) -> dict[str, Any]:
    return dict(results=[r.as_json() for r in results], row_count=sum(r.row_count for r in results),
                status_message=results[-1].status[:200] if results else "")


def submit_connection_check(
    kind_slug: str, values: dict[str, Any], configuration: Configuration | None, user: AbstractBaseUser | None,
    *, workflow: Workflow | None = None, profile: Profile | None = None,
) -> ConnectionCheck:
    """Queue a check of form values that may not be saved yet (a blank secret: see ``secrets_policy``),
    under ``profile`` (what a credentials workflow reads, and whose workers run the check)."""
    kind = kinds.get(kind_slug)
    secret_names = set(kind.secret_fields())
    with transaction.atomic():
        check = ConnectionCheck.objects.create(
            kind=kind_slug,
            integration=configuration.integration if configuration is not None else None,
            configuration=configuration,
            profile=profile or Profile.objects.default(),
            user=user,
            credentials_workflow=workflow,
            config={k: v for k, v in values.items() if k not in secret_names},
            secrets_encrypted=crypto.encrypt_json({k: v for k, v in values.items() if k in secret_names and v}),
            sent_at=timezone.now(),
        )
        lifecycle.submit(check)
    return check


def execute_connection_check(check_id: int) -> None:
    if not lifecycle.claim(ConnectionCheck, check_id):
        return
    check = ConnectionCheck.objects.select_related("configuration", "credentials_workflow", "profile").get(
        pk=check_id)
    kind = kinds.get(check.kind)
    values = {**check.config, **crypto.decrypt_json(check.secrets_encrypted)}
    if check.configuration is not None:
        # A blank secret means "keep the stored one", but only where it was stored for.
        for name in kind.secret_fields():
            if not values.get(name):
                stored = stored_secret_for(kind, check.configuration, values, name)
                if stored:
                    values[name] = stored
    hidden = tuple(str(values[n]) for n in kind.secret_fields() if values.get(n))
    with lifecycle.watcher.working_on(ConnectionCheck, check_id):
        try:
            if check.credentials_workflow is not None:
                # "Test connection" with fetched credentials runs the workflow now, never the cache.
                credentials = fetch(check.credentials_workflow, values, integration_id=None,
                                    trigger="test-connection", secret_fields=kind.secret_fields(),
                                    profile=check.profile)
            else:
                credentials = Credentials(None, values, hidden=hidden)
            try:
                message = kind.test_connection(credentials, connect_timeout=settings.QUERY_CONNECT_TIMEOUT_S)
            except StageError as exc:
                raise masked(exc, credentials) from None
            status = RunStatus.SUCCEEDED
        except StageError as exc:
            message, status = mask_text(str(exc), hidden), RunStatus.FAILED
        except Exception as exc:
            log.exception("connection check %s failed unexpectedly", check_id)
            message, status = f"Internal error ({type(exc).__name__}); see the worker's log.", RunStatus.FAILED
    # The form's secrets were only needed for this one connection.
    lifecycle.finish(ConnectionCheck, check_id, status, message=message, secrets_encrypted="")
