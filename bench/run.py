"""``python -m bench``: start the services, seed the app, run every case, write the results.

Order: the in-process cases first (no worker or web server running yet, so they
do not compete for the CPU), then the worker and the web server for the queued
cases. Cases that are compared run interleaved, round-robin.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import platform
import secrets
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from . import stats
from .config import Config
from .services import LARGE_ROWS, LARGE_TABLE, QUEUE, ROOT, Services, Target

SELECT_1 = "select 1"
BENCH_USER = "bench"
STATIC_NAME = "bench static"
AWS_KEYS = {"aws_access_key_id": "bench-access-key", "aws_secret_access_key": "bench-secret-key"}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt()


def main() -> int:
    cfg = Config.from_env()
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    prepare_environment(cfg)
    log_dir = cfg.var_dir / "logs"
    from .queued import WorkerGone

    try:
        with Services(log_dir) as services:
            try:
                results = run(cfg, services)
            except WorkerGone as exc:
                raise SystemExit(f"bench: {exc}; its log ends with:\n{services.log_tail('worker')}") from None
    except KeyboardInterrupt:
        print("\nbench: interrupted; every process it started has been stopped", file=sys.stderr)
        return 130
    results["machine"]["total_runtime_s"] = round(time.monotonic() - started, 1)
    cfg.output.parent.mkdir(parents=True, exist_ok=True)
    cfg.output.write_text(json.dumps(results, indent=2) + "\n")
    from .chart import PUBLISHED_CHART, PUBLISHED_RESULTS, draw  # matplotlib is imported only to draw

    if cfg.output.resolve() == PUBLISHED_RESULTS:  # make bench PUBLISH=1: the README's chart follows the record
        draw(results, PUBLISHED_CHART)
        print(f"bench: chart drawn to {PUBLISHED_CHART}", flush=True)
    from .report import render

    print(render(results))
    print(f"\nwritten to {cfg.output} in {results['machine']['total_runtime_s']:.0f} s; logs in {log_dir}")
    return 0


def prepare_environment(cfg: Config) -> None:
    """The settings the app reads, set before Django starts: a var dir of its own, production mode."""
    var = cfg.var_dir
    var.mkdir(parents=True, exist_ok=True)
    # A fresh app database and broker folder every run; keys generated once are kept.
    for name in ("credtool.sqlite3", "credtool.sqlite3-wal", "credtool.sqlite3-shm"):
        (var / name).unlink(missing_ok=True)
    shutil.rmtree(var / "broker", ignore_errors=True)
    shutil.rmtree(var / "logs", ignore_errors=True)
    (var / "logs").mkdir()
    os.environ.update(
        CREDTOOL_VAR_DIR=str(var),
        DJANGO_SETTINGS_MODULE="credtool.settings",
        # Production mode, as deployed; plain HTTP on loopback, so no HTTPS redirect.
        CREDTOOL_DEBUG=os.environ.get("BENCH_DEBUG", "false"),
        CREDTOOL_SSL_REDIRECT="false",
        # The benchmark's own console stays quiet; the worker and web server log as deployed (INFO).
        CREDTOOL_LOG_LEVEL="WARNING",
    )
    os.environ.pop("DATABASE_URL", None)  # never a developer's database
    os.environ["DATABASE_URL"] = f"sqlite:///{var / 'credtool.sqlite3'}"
    sys.path.insert(0, str(ROOT))


def run(cfg: Config, services: Services) -> dict[str, Any]:
    t0 = time.monotonic()
    moto_url = services.start_moto()
    superuser_url = services.postgres()
    target = services.target_database(superuser_url)
    if cfg.app_db == "postgres":
        os.environ["DATABASE_URL"] = services.app_database(superuser_url)
        # The integrations' databases then live on the app's own server: allowed for the bench only.
        os.environ["CREDTOOL_INTEGRATION_ALLOW_APP_SERVICES"] = "true"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    logging.getLogger("kombu.connection").setLevel(logging.ERROR)  # "No hostname was supplied" (filesystem://)
    services.wait_moto(moto_url)
    seed_secret(moto_url, target)
    os.environ.update({
        "CREDTOOL_APP_ENV_AWS_ENDPOINT_URL": moto_url,
        "CREDTOOL_APP_ENV_AWS_ACCESS_KEY_ID": AWS_KEYS["aws_access_key_id"],
        "CREDTOOL_APP_ENV_AWS_SECRET_ACCESS_KEY": AWS_KEYS["aws_secret_access_key"],
    })
    app = seed_app(target)
    print(f"bench: services ready in {time.monotonic() - t0:.1f} s; measuring in this process", flush=True)

    results: dict[str, Any] = {}
    detail: dict[str, Any] = {"notes": NOTES, "load_average": {}}

    def group(name: str) -> bool:
        if name in cfg.groups:
            detail["load_average"][name] = [round(v, 2) for v in os.getloadavg()]
            return True
        return False

    if group("queries"):
        made_before = _connections_made()
        fast = fast_group(cfg, app, target)
        for name in ("raw_psycopg", "static", "dynamic_warm"):
            results[name] = stats.summary(fast.pop(name))
        detail["breakdown"] = {name: stats.summary(samples) for name, samples in fast.items()}
        made = _connections_made()
        # Pooled connections: one per integration for the whole group, not one per query.
        detail["in_process_target_connections_opened"] = (
            None if made is None or made_before is None else made - made_before)
        print("bench: in-process queries done", flush=True)

    if group("kinds"):
        from .kinds import kinds_group

        other = kinds_group(cfg, _execute_case)
        for name in ("mysql_raw", "mysql_static", "rest_raw", "rest_static"):
            results[name] = stats.summary(other.pop(name))
        detail.setdefault("breakdown", {}).update({name: stats.summary(v) for name, v in other.items()})
        print("bench: MySQL and REST done", flush=True)

    if group("steps"):
        slow = sandbox_group(cfg, app)
        for name in ("dynamic_cold", "python_step_trivial", "python_step_boto3"):
            results[name] = stats.summary(slow[name])
        print("bench: workflow steps done", flush=True)

    if group("pacing"):
        from . import sandbox_study

        burst = sandbox_study.burst_study(width=8, bursts=cfg.n(5, 3))
        results["sandbox_burst_8"] = {key: burst["warmed"][key] for key in ("p50_ms", "p95_ms", "n")}
        detail["sandbox"] = {
            "cold_step_ms": sandbox_study.cold_step_ms(),
            "pacing": sandbox_study.study(sizes=(1, 2, 4), gaps_ms=(0, 100, 400), steps=cfg.n(8, 4), burst=4),
            "burst_8": burst,
            "refill": sandbox_study.refill_study(),
        }
        print("bench: sandbox pacing study done", flush=True)

    if group("large"):
        results["large_result"], detail["large_result"] = large_result(cfg, app, target)
        print("bench: large result done", flush=True)

    if group("schema"):
        from .schema_load import schema_group

        results["schema_load"], detail["schema_load"] = schema_group(cfg, target, BENCH_USER)
        print("bench: schema load done", flush=True)

    if group("queued"):
        queued, detail["throughput"] = queued_cases(cfg, services, app)
        results.update(queued)

    if "large" in cfg.groups:  # on the worker: after the queued cases, which start it (else it starts here)
        results["export_csv_1m"], detail["export_csv_1m"] = export_csv_1m(services, app)
        print("bench: export_csv_1m done", flush=True)

    if group("multi_host"):  # last: its 8 workers would crowd the timed groups
        from .multi_host import multi_host_group

        results["multi_host"], detail["multi_host"] = multi_host_group(cfg, services, target)

    results["ratios"] = ratios(results)
    results["targets"] = targets(results, detail)
    results["machine"] = machine(cfg, services, target)
    detail["load_average"]["end"] = [round(v, 2) for v in os.getloadavg()]
    results["detail"] = detail
    return results


NOTES = {
    "raw_psycopg": "select 1 on one open autocommit connection (same host, port and sslmode as the integrations)",
    "static": "integrations.execution.execute(run_id) in this process: claim the run row, credentials, pooled "
              "connection, query, store the result (the row is created untimed beforehand; the app database "
              "connection stays open between runs, as in the worker, where CELERY_DB_REUSE_MAX keeps Celery's "
              "Django fixup from closing it around every task)",
    "dynamic_warm": "the same with fetched credentials (getSecrets workflow, cache 300 s) already cached",
    "dynamic_cold": "the same with a cache time of 0: the boto3 getSecrets step against moto before every query",
    "python_step_*": "workflows.runner.run_steps in this process; the sandbox pool is refilled (untimed) before "
                     "each step: see detail.sandbox.pacing for back-to-back steps",
    "sandbox_burst_8": "8 trivial steps at once on a pool as configured (CREDTOOL_SANDBOX_POOL, _MAX) that has "
                       "seen one such burst and refilled: all steps of several bursts; detail.sandbox.burst_8 "
                       "also has the first burst, on the pool never grown, and an idle child's memory",
    "celery_noop": "send_task('bench.noop') until the task ran on the worker (its finish time)",
    "end_to_end": "HTTP POST of the query form (htmx, logged in, CSRF) until the browser has the result: the "
                  "POST's answer when the run finished within the console's wait (CONSOLE_WAIT_S), else the run "
                  "row's finished_at (watched by the bench, as the page's polls would see it)",
    "api_workflow_trivial": "POST /api/v1/workflows/trivial/run (one `return 1` step) with a bearer token, "
                            "until its 200 answer (the API waits for the run)",
    "api_query": "POST /api/v1/integrations/<bench static>/query with select 1, until its 200 answer",
    "schema_load": "a database of 2,000 tables of 8 columns: the worker's schema read (pg_catalog through the "
                   "query's path, stored), then the Schema panel and the JSON it lists from (and completion reads)",
    "throughput": "closed loop: each client waits for its run (or no-op) before sending the next",
    "breakdown.static_app_connection_reopened": "static, but the app database connection is closed before every "
                                                "run (what Celery's Django fixup does unless told otherwise)",
    "breakdown.static_credentials_and_query": "with_credentials + Postgres.run_query, without the run row",
    "breakdown.psycopg_server_cursor": "the floor of a bounded read with raw psycopg: BEGIN, DECLARE, FETCH, COMMIT",
    "breakdown.session_reset": "DISCARD ALL on an open connection: what resetting a pooled session before reuse costs",
    "mysql_raw": "PyMySQL, select 1 on one open autocommit connection to the same MariaDB",
    "mysql_static": "integrations.execution.execute(run_id) on a MySQL integration, as static is for PostgreSQL",
    "rest_raw": "httpx, GET /orders on one client with the bearer token, to the same local JSON API",
    "rest_static": "integrations.execution.execute(run_id) on a REST API integration: GET /orders",
    "breakdown.mysql_credentials_and_query": "with_credentials + MySQL.run_query, without the run row",
    "breakdown.rest_credentials_and_request": "with_credentials + RestApi.run_query, without the run row",
}


# --- seeding ----------------------------------------------------------------------

def seed_secret(moto_url: str, target: Target) -> None:
    import boto3

    boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=moto_url, **AWS_KEYS).create_secret(
        Name="postgresSecrets", SecretString=json.dumps({
            "host": target.host, "port": target.port, "dbname": target.database,
            "username": target.username, "password": target.password}))


@dataclass(frozen=True)
class App:
    """What seed_app made: the integrations' ids and the bench user's password."""

    password: str
    static_id: int
    warm_id: int
    cold_id: int
    get_secrets_code: str


def _api_token() -> str:
    """A token of the bench user, for the API cases (made here: only its hash is stored)."""
    from django.contrib.auth import get_user_model

    from api import tokens

    return tokens.create(get_user_model().objects.get(username=BENCH_USER), "bench").secret


def seed_app(target: Target) -> App:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from devtools.demo import BINDINGS, GET_SECRETS_CODE
    from integrations.models import Integration
    from workflows.models import Step, Workflow

    password = secrets.token_urlsafe(16)
    # A Builder, as most users are: the web requests pay for real permission checks.
    user = get_user_model().objects.create_user(BENCH_USER, "", password)
    builder = Group.objects.filter(name="Builder").first()
    if builder is not None:
        user.groups.add(builder)
    else:  # the roles changed: any user who may run queries will do
        user.is_superuser = True
        user.save()
    workflow = Workflow.objects.create(name="getSecrets", description="postgresSecrets from Secrets Manager (moto)")
    Step.objects.create(workflow=workflow, position=0, name="getSecret", code=GET_SECRETS_CODE, timeout_s=30)
    values = target.values()
    trivial = Workflow.objects.create(name="trivial", description="one step that returns 1 (the API cases)")
    Step.objects.create(workflow=trivial, position=0, name="one", code="return 1", timeout_s=30)
    static = Integration.objects.create_with_default(
        name=STATIC_NAME, kind="postgres", config={k: v for k, v in values.items() if k != "password"},
        secrets={"password": values["password"]})
    warm = Integration.objects.create_with_default(
        name="bench fetched", kind="postgres", fetch_credentials=True, credentials_workflow=workflow,
        credentials_cache_s=300, config=BINDINGS)
    cold = Integration.objects.create_with_default(
        name="bench fetched uncached", kind="postgres", fetch_credentials=True, credentials_workflow=workflow,
        credentials_cache_s=0, config=BINDINGS)
    return App(password=password, static_id=static.pk, warm_id=warm.pk, cold_id=cold.pk,
               get_secrets_code=GET_SECRETS_CODE)


# --- in-process cases -------------------------------------------------------------

def _execute_case(integration_id: int, sql: str = SELECT_1, before: Callable[[], None] | None = None,
                  keep_app_connection: bool = True) -> Callable[[], float]:
    from django.db import connections

    from integrations import execution
    from integrations.models import Integration, QueryRun
    from profiles.models import Profile

    profile = Profile.objects.default()
    configuration = Integration.objects.get(pk=integration_id).configuration_for(profile)

    def case() -> float:
        # As execution.submit records it: the profile and the configuration that answers for it.
        run = QueryRun.objects.create(integration_id=integration_id, configuration=configuration, profile=profile,
                                      sql=sql)
        if before is not None:
            before()
        if not keep_app_connection:
            # What Celery's Django fixup does before (and after) every task unless
            # CELERY_DB_REUSE_MAX says otherwise, whatever CONN_MAX_AGE says.
            connections.close_all()
        started = time.perf_counter()
        execution.execute(run.pk)
        elapsed = (time.perf_counter() - started) * 1000
        status, error, results = QueryRun.objects.filter(pk=run.pk).values_list("status", "error", "results").get()
        if status != "succeeded" or (sql.lower() == SELECT_1.lower() and results[0]["rows"] != [[1]]):
            raise RuntimeError(f"integration {integration_id}: run {run.pk} {status}: {error}")
        return elapsed

    return case


def fast_group(cfg: Config, app: App, target: Target) -> dict[str, list[float]]:
    import socket

    import psycopg

    from integrations.credentials import with_credentials
    from integrations.kinds.base import CancelToken
    from integrations.models import Integration

    # The integrations connect to the resolved address (libpq's hostaddr): so does the floor.
    address = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)[0][4][0]
    raw = psycopg.connect(host=target.host, hostaddr=str(address), port=target.port, dbname=target.database,
                          user=target.username, password=target.password, sslmode="prefer", autocommit=True,
                          application_name="credtool-bench", prepare_threshold=None)
    statements = psycopg.connect(host=target.host, hostaddr=str(address), port=target.port,
                                 dbname=target.database, user=target.username, password=target.password,
                                 sslmode="prefer", application_name="credtool-bench")

    def raw_case() -> float:
        started = time.perf_counter()
        raw.execute(SELECT_1).fetchall()
        return (time.perf_counter() - started) * 1000

    def server_cursor_case() -> float:
        # The least a bounded read costs (BEGIN, DECLARE, FETCH, COMMIT; the cursor closes
        # with the transaction): what run_query could cost with no code of ours around it.
        started = time.perf_counter()
        with statements.transaction():
            cursor = statements.cursor(name="credtool_query")
            cursor.execute(SELECT_1)
            cursor.fetchmany(1001)
        cursor.close()  # after COMMIT: nothing sent
        return (time.perf_counter() - started) * 1000

    def session_reset_case() -> float:
        # What returning a pooled connection to its start-up state costs (issue 9): DISCARD ALL.
        started = time.perf_counter()
        raw.execute("DISCARD ALL")
        return (time.perf_counter() - started) * 1000

    def query_only_case() -> float:
        integration = Integration.objects.get(pk=app.static_id)
        configuration = integration.default_configuration
        kind = integration.kind_impl
        started = time.perf_counter()
        with_credentials(configuration, None, lambda creds: kind.run_query(
            creds, SELECT_1, max_rows=1000, timeout_s=30, cancel=CancelToken(), connect_timeout=5))
        return (time.perf_counter() - started) * 1000

    cases = {
        "raw_psycopg": raw_case,
        "static": _execute_case(app.static_id),
        "dynamic_warm": _execute_case(app.warm_id),
        "static_app_connection_reopened": _execute_case(app.static_id, keep_app_connection=False),
        "static_credentials_and_query": query_only_case,
        "psycopg_server_cursor": server_cursor_case,
        "session_reset": session_reset_case,
    }
    try:
        return stats.round_robin(cases, rounds=cfg.n(500), warmup=cfg.n(50))
    finally:
        raw.close()
        statements.close()


def sandbox_group(cfg: Config, app: App) -> dict[str, list[float]]:
    from workflows import runner, sandbox

    from .sandbox_study import wait_full

    pool = sandbox.default_pool()
    pool.warm()

    def paced() -> None:
        wait_full(pool, pool.size)

    def step_case(name: str, code: str, check: Callable[[Any], bool]) -> Callable[[], float]:
        def case() -> float:
            paced()
            env = runner.worker_env()
            started = time.perf_counter()
            # Under Production, as a query's credentials are fetched: the reference step reads its profile's secret.
            outcome = runner.run_steps([(name, code, 30)], params={}, env=env, profile="production")
            elapsed = (time.perf_counter() - started) * 1000
            if not outcome.ok or not check(outcome.response):
                raise RuntimeError(f"step {name}: {outcome.status} {outcome.error}")
            return elapsed
        return case

    cases = {
        "python_step_trivial": step_case("first", "return 1", lambda r: r == 1),
        "python_step_boto3": step_case("getSecret", app.get_secrets_code, lambda r: isinstance(r, dict)),
        "dynamic_cold": _execute_case(app.cold_id, before=paced),
    }
    return stats.round_robin(cases, rounds=cfg.n(30), warmup=3)


def large_result(cfg: Config, app: App, target: Target) -> tuple[dict, dict]:
    from .large_result import run_in_subprocess

    sql = f"select * from {LARGE_TABLE}"
    values = target.values()
    env = dict(os.environ)
    repeats = cfg.n(5, 2)
    capped = run_in_subprocess(values, sql, "capped", 1000, repeats, env)
    capped_10k = run_in_subprocess(values, sql, "capped", 10_000, repeats, env)
    unbounded = run_in_subprocess(values, sql, "unbounded", 0, 1, env)
    # The worker's whole path too: the run row stores the 1,000 kept rows.
    execute_ms = stats.percentile([_execute_case(app.static_id, sql)() for _ in range(repeats)], 50)
    headline = {
        "wall_ms": capped["wall_ms"],
        "peak_rss_mb": capped["peak_rss_growth_mb"],
        "python_alloc_peak_mb": capped["python_alloc_peak_mb"],
        "rows_kept": capped["rows_kept"],
        "table_rows": LARGE_ROWS,
        "truncated": capped["truncated"],
        "execute_wall_ms": round(execute_ms, 1),
    }
    return headline, {"cap_1000": capped, "cap_10000": capped_10k, "unbounded_fetchall": unbounded,
                      "peak_rss_mb_means": "growth of the process's peak RSS over its RSS before the query"}


# --- exports ----------------------------------------------------------------------

EXPORT_ROWS = 1_000_000


def _worker_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def export_csv_1m(services: Services, app: App) -> tuple[dict, dict]:
    """``export_csv_1m``: Download CSV of a 1,000,000-row result (generate_series, three columns), done
    by the worker through the query's path into a file; the time, and the worker process's peak
    resident memory over its idle size (VmHWM, reset through /proc/<pid>/clear_refs just before;
    VmRSS sampled every 10 ms as well). Idle: after a 20,000-row export, so that what every export
    loads once (modules, the pooled connection) is not counted as the export's."""
    from django.contrib.auth import get_user_model

    from exports import execution as exports, files as export_files
    from exports.models import ExportRun
    from integrations.models import Integration, QueryRun
    from profiles.models import Profile
    from runs.models import FINAL_STATUSES

    from .queued import WorkerGone

    if not services.alive("worker"):
        services.start_worker({**os.environ, "CREDTOOL_LOG_LEVEL": "INFO"})
        services.wait_worker()
    pid = services.pid("worker")
    assert pid is not None
    integration = Integration.objects.get(pk=app.static_id)
    profile = Profile.objects.default()
    user = get_user_model().objects.get(username=BENCH_USER)

    def export(rows: int) -> tuple[ExportRun, float, int]:
        sql = f"select g, 'row ' || g as label, g * 0.5 as half from generate_series(1, {rows}) g"
        # The run as the console records a result cut at the row cap; Download CSV exports it.
        run = QueryRun.objects.create(
            integration=integration, configuration=integration.configuration_for(profile), profile=profile,
            user=user, sql=sql, status="succeeded", results=[{"statement": sql, "columns": ["g", "label", "half"],
                                                             "rows": [], "row_count": 0, "truncated": True}])
        started = time.perf_counter()
        job = exports.submit(run, 1, "csv", user)
        sampled = 0
        while True:
            sampled = max(sampled, _worker_kb(pid, "VmRSS"))
            status = ExportRun.objects.filter(pk=job.pk).values_list("status", flat=True).get()
            if status in FINAL_STATUSES:
                break
            if not services.alive("worker"):
                raise WorkerGone("the worker exited during export_csv_1m")
            time.sleep(0.01)
        wall_ms = (time.perf_counter() - started) * 1000
        job.refresh_from_db()
        if job.status != "succeeded" or job.rows_written != rows:
            raise RuntimeError(f"export {job.pk} {job.status} with {job.rows_written} rows: {job.error}")
        return job, wall_ms, sampled

    fresh_kb = _worker_kb(pid, "VmRSS")
    warm, _, _ = export(20_000)
    export_files.remove(warm.file_path)
    time.sleep(0.5)
    idle_kb = _worker_kb(pid, "VmRSS")
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")  # VmHWM back to the current RSS
        hwm_reset = True
    except OSError:
        hwm_reset = False
    job, wall_ms, sampled_kb = export(EXPORT_ROWS)
    peak_kb = _worker_kb(pid, "VmHWM") if hwm_reset else sampled_kb
    size = job.size_bytes or 0
    export_files.remove(job.file_path)
    headline = {
        "rows": job.rows_written, "wall_ms": round(wall_ms, 1), "worker_ms": round(job.duration_ms or 0, 1),
        "rows_per_s": round(job.rows_written / (wall_ms / 1000)), "file_mb": round(size / 1024 / 1024, 1),
        "idle_rss_mb": round(idle_kb / 1024, 1), "peak_over_idle_mb": round((peak_kb - idle_kb) / 1024, 2),
    }
    print(f"bench: export_csv_1m: {headline['rows']:,} rows, {headline['file_mb']} MB of CSV in "
          f"{headline['wall_ms'] / 1000:.2f} s (worker {headline['worker_ms'] / 1000:.2f} s); worker RSS idle "
          f"{headline['idle_rss_mb']} MB, peak +{headline['peak_over_idle_mb']} MB", flush=True)
    return headline, {
        "peak_from": "VmHWM after clear_refs" if hwm_reset else "VmRSS sampled every 10 ms",
        "sampled_peak_over_idle_mb": round((sampled_kb - idle_kb) / 1024, 2),
        "fresh_worker_rss_mb": round(fresh_kb / 1024, 1),
        "sql": "select g, 'row ' || g as label, g * 0.5 as half from generate_series(1, 1000000) g",
    }


# --- queued cases -----------------------------------------------------------------

def queued_cases(cfg: Config, services: Services, app: App) -> tuple[dict, dict]:
    from credtool.celery import app as celery_app

    from .client import ApiClient, Client
    from .queued import EndToEnd, NoopChannel, RunWatcher, closed_loop

    purge_queue(celery_app)
    # The API cases send hundreds of runs a minute through one token: no rate limit here.
    env = {**os.environ, "CREDTOOL_LOG_LEVEL": "INFO", "CREDTOOL_API_RATE_LIMIT": "1000000"}
    t0 = time.monotonic()
    services.start_worker(env)
    base_url = services.start_web(env)
    services.wait_worker()
    services.wait_web(base_url)
    print(f"bench: worker and web server ready in {time.monotonic() - t0:.1f} s", flush=True)

    login = Client(base_url)
    login.login(BENCH_USER, app.password)
    cookies = dict(login.cookies)
    login.close()
    api = ApiClient(base_url, _api_token())
    workflow_url, query_url = "/api/v1/workflows/trivial/run", f"/api/v1/integrations/{quote(STATIC_NAME)}/query"

    def timed_api(path: str, payload: dict) -> Callable[[], float]:
        def case() -> float:
            started = time.perf_counter()
            api.post(path, payload)
            return (time.perf_counter() - started) * 1000
        return case

    def worker_alive() -> bool:
        return services.alive("worker")

    noop = NoopChannel(celery_app, QUEUE, worker_alive)
    watcher = RunWatcher(cfg.poll_ms, worker_alive)
    e2e = EndToEnd(base_url, cookies, app.static_id, SELECT_1, watcher)
    client = e2e.client()
    try:
        samples = stats.round_robin({
            "celery_noop": noop.round_trip, "end_to_end": lambda: e2e.round_trip(client),
            "api_workflow_trivial": timed_api(workflow_url, {}),
            "api_query": timed_api(query_url, {"sql": SELECT_1}),
        }, rounds=cfg.n(100), warmup=cfg.n(10))
        if e2e.failures:
            raise RuntimeError(f"end-to-end runs failed: {e2e.failures[:3]}")
        results = {name: stats.summary(values) for name, values in samples.items()}
        print("bench: queued latencies done", flush=True)

        warmup_s = min(3.0, cfg.throughput_s / 3)
        # Where the CPU goes per completed round trip ("machine" includes PostgreSQL and everything else).
        processes = {"worker": services.pid("worker"), "web": services.pid("web"), "bench": os.getpid(),
                     "machine": "all"}
        noop_load = closed_loop(lambda: noop.round_trip, clients=cfg.clients, warmup_s=warmup_s,
                                measure_s=cfg.throughput_s, processes=processes)

        def e2e_worker() -> Callable[[], float]:
            own = e2e.client()
            return lambda: e2e.round_trip(own)

        made_before = noop.probe().get("connections_made")
        runs_before = _finished_runs()
        e2e_load = closed_loop(e2e_worker, clients=cfg.clients, warmup_s=warmup_s, measure_s=cfg.throughput_s,
                               processes=processes)
        made = noop.probe().get("connections_made")
        runs = _finished_runs() - runs_before
        print("bench: throughput done", flush=True)
    finally:
        client.close()
        api.close()
        noop.close()
        watcher.close()
    results["throughput_qps"] = round(e2e_load.qps, 1)
    results["celery_noop_qps"] = round(noop_load.qps, 1)
    detail = {
        "clients": cfg.clients, "seconds": cfg.throughput_s, "warmup_s": warmup_s, "poll_ms": cfg.poll_ms,
        "end_to_end_under_load": stats.summary(e2e_load.latencies_ms) if e2e_load.latencies_ms else None,
        "celery_noop_under_load": stats.summary(noop_load.latencies_ms) if noop_load.latencies_ms else None,
        # The worker's pool of connections to the integration's database, under 16 clients.
        "end_to_end_target_connections_opened": None if made is None or made_before is None else {
            "connections": made - made_before, "queries": runs,
            "per_query": round((made - made_before) / max(1, runs), 3)},
        "end_to_end_cpu_ms_per_query": e2e_load.cpu_ms_per_op, "celery_noop_cpu_ms_per_task": noop_load.cpu_ms_per_op,
        # Round trips whose POST answered with the result (the console waits in the request).
        "end_to_end_answered_by_the_post": f"{e2e.answered_final} of {e2e.round_trips}",
        "end_to_end_errors": e2e_load.errors[:5] + e2e.failures[:5], "celery_noop_errors": noop_load.errors[:5],
    }
    return results, detail


def _connections_made() -> int | None:
    try:
        from integrations.kinds import postgres

        return postgres._pool.connections_made
    except (ImportError, AttributeError):
        return None


def _finished_runs() -> int:
    from integrations.models import QueryRun
    from runs.models import FINAL_STATUSES

    return QueryRun.objects.filter(status__in=FINAL_STATUSES).count()


def purge_queue(celery_app) -> None:
    """Leftovers of an interrupted run must not execute now (only the benchmark's own queue)."""
    if celery_app.conf.broker_url.startswith("filesystem://"):
        return  # its folder under the bench's var dir was removed at start
    with celery_app.connection_for_write() as conn:
        try:
            conn.default_channel.queue_purge(QUEUE)
        except Exception:
            pass  # the queue does not exist yet


# --- summary ----------------------------------------------------------------------

def _p50(results: dict, name: str) -> float | None:
    value = results.get(name)
    return value["p50_ms"] if isinstance(value, dict) and "p50_ms" in value else None


def _gap(results: dict, case: str, floor: str) -> float | None:
    a, b = _p50(results, case), _p50(results, floor)
    return round(a - b, 3) if a is not None and b is not None else None


def ratios(results: dict) -> dict[str, float | None]:
    return {
        "dynamic_warm_over_static": stats.ratio(_p50(results, "dynamic_warm"), _p50(results, "static")),
        "static_over_raw": stats.ratio(_p50(results, "static"), _p50(results, "raw_psycopg")),
        "end_to_end_over_celery_noop": stats.ratio(_p50(results, "end_to_end"), _p50(results, "celery_noop")),
        "throughput_over_celery_noop": stats.ratio(results.get("throughput_qps"), results.get("celery_noop_qps")),
        "dynamic_cold_over_dynamic_warm": stats.ratio(_p50(results, "dynamic_cold"), _p50(results, "dynamic_warm")),
        "mysql_static_over_raw": stats.ratio(_p50(results, "mysql_static"), _p50(results, "mysql_raw")),
        "rest_static_over_raw": stats.ratio(_p50(results, "rest_static"), _p50(results, "rest_raw")),
    }


def targets(results: dict, detail: dict) -> dict[str, dict]:
    r = results["ratios"]
    raw, static = _p50(results, "raw_psycopg"), _p50(results, "static")
    large = results.get("large_result")
    hosts = results.get("multi_host") or {}
    checks: dict[str, tuple[Any, Callable[[Any], bool]]] = {
        "dynamic_warm_over_static <= 1.05": (r["dynamic_warm_over_static"], lambda v: v <= 1.05),
        "static p50 - raw_psycopg p50 <= 0.5 ms": (
            round(static - raw, 3) if static is not None and raw is not None else None, lambda v: v <= 0.5),
        "mysql_static p50 - mysql_raw p50 <= 0.5 ms": (_gap(results, "mysql_static", "mysql_raw"), lambda v: v <= 0.5),
        "rest_static p50 - rest_raw p50 <= 0.5 ms": (_gap(results, "rest_static", "rest_raw"), lambda v: v <= 0.5),
        "end_to_end_over_celery_noop <= 1.5": (r["end_to_end_over_celery_noop"], lambda v: v <= 1.5),
        # Issue 14: the web process's CPU per query in the throughput case (its POST, its wait, its answer).
        "web CPU per query <= 2 ms": (
            (detail.get("throughput") or {}).get("end_to_end_cpu_ms_per_query", {}).get("web"),
            lambda v: v <= 2),
        "throughput_over_celery_noop >= 0.7": (r["throughput_over_celery_noop"], lambda v: v >= 0.7),
        "python_step_trivial p50 <= 25 ms": (_p50(results, "python_step_trivial"), lambda v: v <= 25),
        "python_step_boto3 p50 <= 60 ms": (_p50(results, "python_step_boto3"), lambda v: v <= 60),
        "sandbox_burst_8 p95 <= 100 ms": ((results.get("sandbox_burst_8") or {}).get("p95_ms"), lambda v: v <= 100),
        # Bounded: cut at the cap, and far less memory than reading the whole table.
        "large_result cut at the cap, memory bounded": (
            large and large["rows_kept"], lambda v: v == 1000 and large["truncated"] and large["peak_rss_mb"] < 64),
        # Streamed to the file: the worker's memory stays within a few MB of its idle size.
        "export_csv_1m worker peak over idle <= 8 MB": (
            (results.get("export_csv_1m") or {}).get("peak_over_idle_mb"), lambda v: v <= 8),
        # Issue 14: one fetch per integration across 8 hosts, and one refetch per rotation.
        "multi_host shared_calls == 10": (hosts.get("shared_calls"), lambda v: v == 10),
        "multi_host shared_rotation_calls == 10": (hosts.get("shared_rotation_calls"), lambda v: v == 10),
        "multi_host per_process_calls <= 80": (hosts.get("per_process_calls"), lambda v: v <= 80),
        "multi_host failed_queries == 0": (hosts.get("failed_queries"), lambda v: v == 0),
    }
    return {name: {"value": value, "met": None if value is None else bool(check(value))}
            for name, (value, check) in checks.items()}


def machine(cfg: Config, services: Services, target: Target) -> dict[str, Any]:
    import django
    import psycopg
    from django.conf import settings
    from django.db import connection

    from workflows import sandbox

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    broker = settings.CELERY_BROKER_URL
    if "@" in broker:  # no password in the results
        scheme, rest = broker.split("://", 1)
        broker = f"{scheme}://***@{rest.split('@', 1)[1]}"
    with target.superuser() as conn:
        version = conn.info.server_version
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)), "cpu_model": model,
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(), "platform": platform.platform(),
        "django": django.get_version(), "psycopg": psycopg.__version__,
        "broker": broker, "app_database": connection.vendor,
        "postgres": f"{version // 10000}.{version % 10000}, {services.postgres_source}",
        "worker": f"{settings.CELERY_WORKER_POOL} pool, concurrency {settings.CELERY_WORKER_CONCURRENCY}",
        "sandbox": sandbox.isolation().mode, "sandbox_pool_size": sandbox.default_pool().size,
        "sandbox_pool_max": sandbox.default_pool().max_size,
        "broker_transport": getattr(settings, "CELERY_BROKER_TRANSPORT", None) or "from the URL",
        "debug": settings.DEBUG, "scale": cfg.scale, "groups": sorted(cfg.groups),
    }

