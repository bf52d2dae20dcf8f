"""The other kinds side by side with their raw driver or client: MySQL against PyMySQL, a REST API
against a bare httpx call, on the same servers (a MariaDB, devtools.localapi), in this process.

``mysql_static``/``rest_static`` are the worker's whole path (claim the run row, credentials,
pooled connection, request, store the result), as ``static`` is for PostgreSQL; the
``*_credentials_and_*`` breakdowns are the kind's own path without the run row.
"""
from __future__ import annotations

import os
import secrets
import time
from typing import Any, Callable
from urllib.parse import urlsplit

from . import stats

MYSQL_SELECT_1 = "select 1"
REST_REQUEST = "GET /orders"


def kinds_group(cfg: Any, execute_case: Callable[..., Callable[[], float]]) -> dict[str, list[float]]:
    import httpx
    import pymysql

    from devtools import localapi, localmysql
    from integrations.credentials import with_credentials
    from integrations.kinds.base import CancelToken
    from integrations.models import Integration

    server = None
    admin_url = os.environ.get("TEST_MYSQL_URL")
    if not admin_url:
        server = localmysql.start()
        admin_url = server.url
    api = localapi.LocalApi(secret="bench-" + secrets.token_urlsafe(8))
    url = urlsplit(admin_url)
    password = "bench-" + secrets.token_hex(8)
    admin = pymysql.connect(host=url.hostname, port=url.port or 3306, user=url.username or "root",
                            password=url.password or "", autocommit=True)
    try:
        with admin.cursor() as cursor:
            cursor.execute("DROP DATABASE IF EXISTS credtool_bench")
            cursor.execute("CREATE DATABASE credtool_bench")
            cursor.execute("DROP USER IF EXISTS 'credtool_bench'@'%'")
            cursor.execute("CREATE USER 'credtool_bench'@'%%' IDENTIFIED BY %s", (password,))
            cursor.execute("GRANT ALL ON credtool_bench.* TO 'credtool_bench'@'%'")
        values = {"host": url.hostname, "port": url.port or 3306, "database": "credtool_bench",
                  "username": "credtool_bench", "ssl_mode": "preferred"}
        mysql = Integration.objects.create_with_default(name="bench mysql", kind="mysql", config=values,
                                                        secrets={"password": password})
        rest = Integration.objects.create_with_default(
            name="bench rest", kind="rest", config={"base_url": api.url, "auth": "bearer", "verify_tls": True},
            secrets={"bearer_token": api.secret})

        raw_mysql = pymysql.connect(host=url.hostname, port=url.port or 3306, user="credtool_bench",
                                    password=password, database="credtool_bench", autocommit=True)
        raw_http = httpx.Client(trust_env=False)
        token = {"Authorization": f"Bearer {api.secret}"}

        def timed(call: Callable[[], Any]) -> Callable[[], float]:
            def case() -> float:
                started = time.perf_counter()
                call()
                return (time.perf_counter() - started) * 1000
            return case

        def mysql_raw() -> None:
            with raw_mysql.cursor() as cursor:
                cursor.execute(MYSQL_SELECT_1)
                cursor.fetchall()

        def rest_raw() -> None:
            response = raw_http.get(api.url + "/orders", headers=token)
            response.raise_for_status()
            response.json()

        def kind_path(integration: Integration, request: str) -> Callable[[], None]:
            configuration = Integration.objects.get(pk=integration.pk).default_configuration
            kind = configuration.kind_impl
            return lambda: with_credentials(configuration, None, lambda creds: kind.run_query(
                creds, request, max_rows=1000, timeout_s=30, cancel=CancelToken(), connect_timeout=5))

        cases = {
            "mysql_raw": timed(mysql_raw),
            "mysql_static": execute_case(mysql.pk, MYSQL_SELECT_1),
            "mysql_credentials_and_query": timed(kind_path(mysql, MYSQL_SELECT_1)),
            "rest_raw": timed(rest_raw),
            "rest_static": execute_case(rest.pk, REST_REQUEST),
            "rest_credentials_and_request": timed(kind_path(rest, REST_REQUEST)),
        }
        try:
            return stats.round_robin(cases, rounds=cfg.n(300), warmup=cfg.n(30))
        finally:
            raw_mysql.close()
            raw_http.close()
    finally:
        admin.close()
        api.stop()
        if server is not None:
            server.stop()
