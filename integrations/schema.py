"""The Schema panel's data: an integration's schemas, tables, views and columns, read by a worker.

A read is a background run (``SchemaRead``) like a query, and goes through the
query's path: the configuration for the profile, fetched credentials and their
cache and rotation retry (``with_credentials``), the destinations check, the
integration's timeout, a read-only session. What it runs is the kind's
``schema_query`` (pg_catalog for PostgreSQL, information_schema for MySQL),
one row a column. The newest read that succeeded for an integration and a
profile is the cache the panel and completion use until **Refresh schema**.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from profiles.models import Profile
from runs import lifecycle
from runs.models import RunStatus

from .credentials import with_credentials
from .kinds.base import CancelToken, Credentials, QueryCancelled, StageError, StatementResult
from .models import Integration, SchemaRead

log = logging.getLogger(__name__)

# Columns read at most (all tables together): 2,000 tables of 20 columns fit.
MAX_COLUMNS = 100_000
CONNECT_TIMEOUT_S = 5


def has_schema(integration: Integration) -> bool:
    return bool(integration.kind_impl.schema_query)


def latest(integration: Integration, profile: Profile) -> SchemaRead | None:
    """The newest read for the integration and profile, whatever its state (without the schema itself)."""
    return SchemaRead.objects.filter(integration=integration, profile=profile).defer("schema").first()


def cached(integration: Integration, profile: Profile, *, with_schema: bool = False) -> SchemaRead | None:
    """The newest read that succeeded: what the panel shows while a refresh runs. The schema itself
    (up to a megabyte for thousands of tables) is loaded only when asked for."""
    reads = SchemaRead.objects.filter(integration=integration, profile=profile, status=RunStatus.SUCCEEDED)
    return (reads if with_schema else reads.defer("schema")).first()


def submit(integration: Integration, profile: Profile, user: AbstractBaseUser | None) -> SchemaRead:
    with transaction.atomic():
        read = SchemaRead.objects.create(integration=integration, configuration=integration.configuration_for(profile),
                                         profile=profile, user=user, sent_at=timezone.now())
        lifecycle.submit(read)
    return read


def execute(read_id: int) -> None:
    """Worker side of a read; every outcome ends in a final status on the row."""
    if not lifecycle.claim(SchemaRead, read_id):
        return
    read = SchemaRead.objects.select_related("integration", "configuration__credentials_workflow", "profile").get(
        pk=read_id)
    integration = read.integration
    configuration = read.configuration or integration.configuration_for(read.profile)
    kind = integration.kind_impl
    token = CancelToken()
    started = time.perf_counter()
    fields: dict[str, Any]
    with lifecycle.watcher.working_on(SchemaRead, read_id, token):
        try:
            def query(creds: Credentials) -> list[StatementResult]:
                return kind.run_query(creds, kind.schema_query, max_rows=MAX_COLUMNS,
                                      timeout_s=integration.statement_timeout_s, cancel=token,
                                      connect_timeout=CONNECT_TIMEOUT_S, read_only=True)

            results = with_credentials(configuration, read.profile, query)
            schema = shaped(results[-1].rows, truncated=results[-1].truncated)
            status, fields = RunStatus.SUCCEEDED, {"schema": schema, "table_count": table_count(schema)}
        except QueryCancelled:
            status, fields = RunStatus.CANCELLED, {"error": "Cancelled while running."}
        except StageError as exc:
            status, fields = RunStatus.FAILED, {"error": str(exc)}
        except Exception as exc:  # a bug of ours: record it, never leave the read "running"
            log.exception("schema read %s failed unexpectedly", read_id)
            status, fields = RunStatus.FAILED, {"error": f"Internal error ({type(exc).__name__}); see the worker's log."}
    lifecycle.finish(SchemaRead, read_id, status, duration_ms=(time.perf_counter() - started) * 1000, **fields)


def shaped(rows: list[list[Any]], *, truncated: bool = False) -> dict[str, Any]:
    """Rows of (schema, table, kind, column, type, pk, default schema), in order, as a tree."""
    schemas: list[dict[str, Any]] = []
    schema: dict[str, Any] | None = None
    table: dict[str, Any] | None = None
    for schema_name, table_name, table_kind, column, column_type, pk, default in rows:
        if schema is None or schema["name"] != schema_name:
            schema = {"name": schema_name, "default": _flag(default), "tables": []}
            schemas.append(schema)
            table = None
        if table is None or table["name"] != table_name:
            table = {"name": table_name, "kind": table_kind, "columns": []}
            schema["tables"].append(table)
        table["columns"].append({"name": column, "type": column_type, "pk": _flag(pk)})
    # The default schema first: it is the one unqualified names find.
    schemas.sort(key=lambda s: (not s["default"], s["name"]))
    return {"schemas": schemas, "truncated": truncated}


def _flag(value: Any) -> bool:
    return value in (True, 1, "1", "t", "true")


def table_count(schema: dict[str, Any]) -> int:
    return sum(len(s["tables"]) for s in schema.get("schemas", []))
