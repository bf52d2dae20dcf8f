"""schema_load: the Schema panel over a database of 2,000 tables (issue 13).

What a user waits for before the panel lists the tables, per repeat: the worker's read
(``integrations.schema.execute``: the kind's pg_catalog query through the query's path,
shaped into the tree and stored), the panel (the view, as a request reaches it) and the JSON
it lists from (shared with completion). The browser then lists 200 tables at a time.
"""
from __future__ import annotations

import time
from typing import Any

from . import stats
from .services import Target

TABLES = 2000
COLUMNS = 8
DATABASE = "credtool_bench_schema"


def _seed(target: Target) -> dict[str, Any]:
    with target.superuser() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE} OWNER {target.username}")
    with target.superuser(dbname=DATABASE) as conn:
        conn.execute(f"SET ROLE {target.username}")
        columns = ", ".join(f"c{i} {'int' if i % 2 else 'text'}" for i in range(1, COLUMNS))
        conn.execute(f"""DO $$ BEGIN FOR i IN 1..{TABLES} LOOP
            EXECUTE format('CREATE TABLE t%s (id serial PRIMARY KEY, {columns})', i);
            END LOOP; END $$""")
    return {**target.values(), "database": DATABASE}


def schema_group(cfg: Any, target: Target, username: str) -> tuple[dict, dict]:
    from django.contrib.auth import get_user_model
    from django.test import RequestFactory

    from integrations import schema, schema_views
    from integrations.models import Integration, SchemaRead
    from profiles.models import Profile

    values = _seed(target)
    integration = Integration.objects.create_with_default(
        name="bench schema", kind="postgres", config={k: v for k, v in values.items() if k != "password"},
        secrets={"password": values["password"]})
    profile = Profile.objects.default()
    user = get_user_model().objects.get(username=username)
    factory = RequestFactory()

    def get(view: Any, path: str) -> tuple[float, int]:
        request = factory.get(path, {"profile": profile.key}, HTTP_HX_REQUEST="true")
        request.user = user
        started = time.perf_counter()
        response = view(request, integration.pk)
        return (time.perf_counter() - started) * 1000, len(response.content)

    reads, panels, jsons, totals = [], [], [], []
    html_bytes = json_bytes = 0
    try:
        for _ in range(cfg.n(5, 2)):
            read = SchemaRead.objects.create(integration=integration, profile=profile, user=user)
            started = time.perf_counter()
            schema.execute(read.pk)
            read_ms = (time.perf_counter() - started) * 1000
            read.refresh_from_db()
            assert read.status == "succeeded" and read.table_count == TABLES, (read.status, read.error)
            panel_ms, html_bytes = get(schema_views.schema_panel, "/schema/")
            json_ms, json_bytes = get(schema_views.schema_json, "/schema.json")
            reads.append(read_ms)
            panels.append(panel_ms)
            jsons.append(json_ms)
            totals.append(read_ms + panel_ms + json_ms)
    finally:
        # Its tables are owned by the target's role, which the bench drops at the end.
        with target.superuser() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    detail = {"tables": TABLES, "columns_per_table": COLUMNS, "read": stats.summary(reads),
              "panel_render": stats.summary(panels), "completion_json": stats.summary(jsons),
              "panel_html_bytes": html_bytes, "completion_json_bytes": json_bytes}
    return stats.summary(totals), detail
