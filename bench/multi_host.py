"""``multi_host`` (issue 14): how many GetSecretValue calls 8 worker hosts make, with and without the shared cache.

Eight real Celery worker processes (the deployed threads pool, 4 threads each,
each its own memory: one process stands for one host) run 400 queries spread
over 10 integrations whose credentials a workflow fetches from Secrets Manager
(one secret, one workflow and one database role each; cache time 300 s). Then
all 10 secrets are rotated for real (the role's password changes, the secret is
updated, the roles' sessions are ended so every host must log in again) and 400
more queries run on the same, still warm, workers. Done twice: each process
caching for itself, then with ``CREDTOOL_CREDENTIAL_CACHE`` pointing at Redis.

The calls are counted by moto, not by us: a moto server of this group's own,
with its recorder on, so that no other group's calls are in its count.
"""
from __future__ import annotations

import json
import os
import random
import secrets
import sys
import time
import urllib.request
from collections import Counter
from typing import Any

from .config import Config
from .services import QUEUE, Services, Target, free_port, wait_until

PROCESSES = 8
THREADS = 4  # per process: concurrent queries in one process share its cache too
INTEGRATIONS = 10
QUERIES = 400
CACHE_S = 300
# Database 12 is the shared cache tests'; 13 is used by nothing else in the repository.
REDIS_URL = "redis://127.0.0.1:6379/13"
# Held while a run uses the database, so that two benches on one machine do not count each other's entries.
OWNER_KEY = "credtool:bench:multi_host:owner"
ROLE_PREFIX = "credtool_bench_mh"
GET_SECRET_VALUE = "secretsmanager.GetSecretValue"
RUN_TIMEOUT_S = 180

NOTE = ("8 Celery worker processes (threads pool, 4 threads, own memory each: one per host), 10 PostgreSQL "
        "integrations with fetched credentials (a workflow, a secret and a role each; cache 300 s), 400 queries "
        "sent at once, every (process, integration) pair 5 times; then all 10 secrets rotated (new role password, "
        "secret updated, the roles' sessions ended; no query in flight during the few ms it takes, as a "
        "single-user rotation has a window where no query can log in) and 400 more queries on the same warm "
        "workers. GetSecretValue calls counted by moto's recorder on a moto server of this group's own.")

SKIPPED = {"per_process_calls": None, "shared_calls": None, "per_process_rotation_calls": None,
           "shared_rotation_calls": None, "failed_queries": None}


def multi_host_group(cfg: Config, services: Services, target: Target) -> tuple[dict, dict]:
    """The ``multi_host`` results entry and its detail; skipped (with the reason) when Redis does not answer."""
    import redis

    started = time.monotonic()
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=5)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        # Embedded installs have no Redis: the group says so instead of failing the bench.
        reason = f"no Redis at {REDIS_URL} ({type(exc).__name__}): the shared cache cannot be measured"
        print(f"bench: multi_host skipped: {reason}", flush=True)
        return {**SKIPPED, "skipped": reason}, {"notes": NOTE}
    owner = secrets.token_hex(8)
    try:
        wait_until(lambda: bool(client.set(OWNER_KEY, owner, nx=True, ex=600)), timeout=120, interval=1,
                   what=f"another bench to finish with {REDIS_URL}")
    except RuntimeError as exc:
        return {**SKIPPED, "skipped": str(exc)}, {"notes": NOTE}
    moto_url = _start_moto(cfg, services)
    roles = [f"{ROLE_PREFIX}{i}" for i in range(INTEGRATIONS)]
    try:
        services.wait_moto(moto_url)
        setup = _seed(moto_url, target, roles)
        measured: dict[str, dict[str, Any]] = {}
        for mode in ("per_process", "shared"):
            _clear_entries(client)
            measured[mode] = _measure(mode, cfg, services, moto_url, target, roles, setup)
        _clear_entries(client)
    finally:
        services.stop("moto_multi_host")
        _drop_roles(target, roles)
        if client.get(OWNER_KEY) == owner.encode():
            client.delete(OWNER_KEY)
        client.close()
    failed = sum(m["failed_queries"] for m in measured.values())
    headline = {
        "per_process_calls": measured["per_process"]["calls"],
        "shared_calls": measured["shared"]["calls"],
        "per_process_rotation_calls": measured["per_process"]["rotation_calls"],
        "shared_rotation_calls": measured["shared"]["rotation_calls"],
        "failed_queries": failed,
    }
    runtime_s = round(time.monotonic() - started, 1)
    print(f"bench: multi_host done in {runtime_s:.0f} s: GetSecretValue per-process {headline['per_process_calls']} "
          f"(+{headline['per_process_rotation_calls']} after rotation), shared {headline['shared_calls']} "
          f"(+{headline['shared_rotation_calls']}), {failed} failed queries", flush=True)
    return headline, {
        "notes": NOTE, "processes": PROCESSES, "threads_per_process": THREADS, "integrations": INTEGRATIONS,
        "queries_per_phase": QUERIES, "credentials_cache_s": CACHE_S, "redis": REDIS_URL, "runtime_s": runtime_s,
        **measured,
    }


# --- setup --------------------------------------------------------------------------

def _start_moto(cfg: Config, services: Services) -> str:
    recording = cfg.var_dir / "multi_host-moto-recording.jsonl"
    recording.unlink(missing_ok=True)
    port = free_port()
    # The recorder writes to a file in moto's working directory unless told where: ours is the checkout.
    env = {**os.environ, "MOTO_RECORDER_FILEPATH": str(recording)}
    services.spawn("moto_multi_host", [
        os.path.join(os.path.dirname(sys.executable), "moto_server"), "-H", "127.0.0.1", "-p", str(port)], env)
    return f"http://127.0.0.1:{port}"


def _secrets_client(moto_url: str) -> Any:
    import boto3

    # The keys the workers' steps use (run() sets them; moto takes any).
    return boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=moto_url,
                        aws_access_key_id=os.environ["CREDTOOL_APP_ENV_AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=os.environ["CREDTOOL_APP_ENV_AWS_SECRET_ACCESS_KEY"])


def _payload(target: Target, role: str, password: str) -> str:
    return json.dumps({"host": target.host, "port": target.port, "dbname": target.database, "username": role,
                       "password": password})


def _seed(moto_url: str, target: Target, roles: list[str]) -> dict[str, Any]:
    """One role, secret, workflow and integration per index; returns the integrations' ids."""
    from psycopg import sql

    from devtools.demo import BINDINGS, secret_step
    from integrations.models import Integration
    from workflows.models import Step, Workflow

    client = _secrets_client(moto_url)
    ids = []
    with target.superuser() as conn:
        for i, role in enumerate(roles):
            password = "mh-" + secrets.token_hex(8)
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))  # an interrupted run's
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)))
            client.create_secret(Name=_secret_name(i), SecretString=_payload(target, role, password))
            name = f"getMultiHostSecrets{i}"
            workflow = Workflow.objects.create(name=name, description=f"{_secret_name(i)} (multi_host)")
            Step.objects.create(workflow=workflow, position=0, name="getSecret", code=secret_step(_secret_name(i)),
                                timeout_s=30)
            integration = Integration.objects.create_with_default(
                name=f"multi_host {i}", kind="postgres", fetch_credentials=True, credentials_workflow=workflow,
                credentials_cache_s=CACHE_S, config={k: v.replace("getSecrets", name) for k, v in BINDINGS.items()})
            ids.append(integration.pk)
    return {"integration_ids": ids}


def _secret_name(i: int) -> str:
    return f"multiHostSecrets-{i}"


def _rotate(moto_url: str, target: Target, roles: list[str]) -> None:
    """What a single-user rotation does: a new password on the role and in the secret. The roles' open
    sessions are ended too (a password change leaves them logged in): every host must log in again."""
    from psycopg import sql

    client = _secrets_client(moto_url)
    with target.superuser() as conn:
        for i, role in enumerate(roles):
            password = "mh-rotated-" + secrets.token_hex(8)
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
            client.put_secret_value(SecretId=_secret_name(i), SecretString=_payload(target, role, password))
        conn.execute("select pg_terminate_backend(pid) from pg_stat_activity where usename = any(%s)", [roles])


def _drop_roles(target: Target, roles: list[str]) -> None:
    from psycopg import sql

    try:
        with target.superuser(connect_timeout=5) as conn:
            conn.execute("select pg_terminate_backend(pid) from pg_stat_activity where usename = any(%s)", [roles])
            for role in roles:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
    except Exception as exc:  # the server may be gone already; the throwaway one goes with its roles
        print(f"bench: multi_host: could not drop its roles: {exc}", file=sys.stderr)


def _clear_entries(client: Any) -> None:
    """Our database's credential entries: integration ids restart with every bench's fresh app database."""
    for key in client.scan_iter("credtool:credentials:*", count=1000):
        client.delete(key)


# --- one mode -----------------------------------------------------------------------

def _measure(mode: str, cfg: Config, services: Services, moto_url: str, target: Target, roles: list[str],
             setup: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "CREDTOOL_LOG_LEVEL": "INFO", "CREDTOOL_APP_ENV_AWS_ENDPOINT_URL": moto_url,
           # Two warm sandbox children per process, never grown: 8 processes x 4 (or x 8 after a burst) would
           # spend the machine on starting children that the few fetches here never use.
           "CREDTOOL_SANDBOX_POOL": "2", "CREDTOOL_SANDBOX_POOL_MAX": "2"}
    env.pop("CREDTOOL_CREDENTIAL_CACHE", None)  # a developer's own setting must not leak into per_process
    if mode == "shared":
        env["CREDTOOL_CREDENTIAL_CACHE"] = REDIS_URL
    names = [f"multi_host_{mode}_{p}" for p in range(PROCESSES)]
    queues = [f"{QUEUE}-multi-host-{p}" for p in range(PROCESSES)]
    t0 = time.monotonic()
    for name, queue in zip(names, queues):
        services.spawn(name, [
            sys.executable, "-m", "celery", "-A", "credtool", "worker", "--loglevel=INFO", f"--concurrency={THREADS}",
            "-Q", queue, "-n", f"{name}-{os.getpid()}@%h", "--without-gossip", "--without-mingle",
            "--without-heartbeat"], env)
    try:
        for name in names:
            wait_until(lambda: " ready." in services.log_tail(name, 100_000) or not services.alive(name),
                       timeout=120, what=f"worker {name}")
            if not services.alive(name):
                raise RuntimeError(f"worker {name} exited at start:\n{services.log_tail(name)}")
        started_s = time.monotonic() - t0
        _recorder(moto_url, "reset-recording")
        _recorder(moto_url, "start-recording")
        first = _wave(setup["integration_ids"], queues, names, services, seed=1)
        calls = _get_secret_value_calls(moto_url)
        _recorder(moto_url, "reset-recording")
        _rotate(moto_url, target, roles)
        second = _wave(setup["integration_ids"], queues, names, services, seed=2)
        rotation_calls = _get_secret_value_calls(moto_url)
        _recorder(moto_url, "stop-recording")
    finally:
        services.stop(*names)
    result = {
        "calls": sum(calls.values()), "rotation_calls": sum(rotation_calls.values()),
        "failed_queries": first["failed"] + second["failed"],
        "calls_per_secret": dict(sorted(calls.items())),
        "rotation_calls_per_secret": dict(sorted(rotation_calls.items())),
        "workers_ready_s": round(started_s, 1), "wave_s": first["wall_s"], "rotation_wave_s": second["wall_s"],
        "errors": (first["errors"] + second["errors"])[:5],
    }
    print(f"bench: multi_host {mode}: {result['calls']} GetSecretValue calls, {result['rotation_calls']} after the "
          f"rotation, {result['failed_queries']} failed queries (workers ready in {started_s:.1f} s)", flush=True)
    return result


def _wave(integration_ids: list[int], queues: list[str], names: list[str], services: Services,
          seed: int) -> dict[str, Any]:
    """QUERIES runs sent at once, each (process, integration) pair equally often, in a shuffled order
    (so that several processes meet a cold or rotated entry at the same time); waits for them all."""
    from django.utils import timezone

    from credtool.celery import app as celery_app
    from integrations.models import Integration, QueryRun
    from profiles.models import Profile
    from runs.models import FINAL_STATUSES

    pairs = [(p, i) for p in range(len(queues)) for i in range(len(integration_ids))]
    order = pairs * (QUERIES // len(pairs))
    random.Random(seed).shuffle(order)
    profile = Profile.objects.default()
    configurations = {pk: Integration.objects.get(pk=pk).configuration_for(profile) for pk in integration_ids}
    now = timezone.now()
    runs = QueryRun.objects.bulk_create([
        QueryRun(integration_id=integration_ids[i], configuration=configurations[integration_ids[i]], profile=profile,
                 sql="select current_user", sent_at=now) for _, i in order])
    started = time.monotonic()
    for run, (p, _) in zip(runs, order):
        celery_app.send_task(QueryRun.task_name, args=[run.pk], queue=queues[p])
    ids = [run.pk for run in runs]
    deadline = started + RUN_TIMEOUT_S
    while QueryRun.objects.filter(pk__in=ids, status__in=FINAL_STATUSES).count() < len(ids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"multi_host: runs not finished within {RUN_TIMEOUT_S} s")
        gone = [name for name in names if not services.alive(name)]
        if gone:
            raise RuntimeError(f"multi_host: worker {gone[0]} exited:\n{services.log_tail(gone[0])}")
        time.sleep(0.05)
    wall_s = round(time.monotonic() - started, 2)
    failed = QueryRun.objects.filter(pk__in=ids).exclude(status="succeeded")
    return {"wall_s": wall_s, "failed": failed.count(),
            "errors": [f"{run.status}: {run.error}" for run in failed[:5]]}


# --- moto's count -------------------------------------------------------------------

def _recorder(moto_url: str, action: str) -> str:
    with urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/recorder/{action}",
                                                       method="POST" if action != "download-recording" else "GET"),
                                timeout=30) as response:
        return response.read().decode()


def _get_secret_value_calls(moto_url: str) -> Counter[str]:
    """GetSecretValue requests moto recorded since its last reset, by secret."""
    import base64

    calls: Counter[str] = Counter()
    for line in _recorder(moto_url, "download-recording").splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        headers = {k.lower(): v for k, v in entry.get("headers", {}).items()}
        if headers.get("x-amz-target") != GET_SECRET_VALUE:
            continue
        body = entry.get("body") or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode()
        try:
            calls[json.loads(body).get("SecretId", "?")] += 1
        except ValueError:
            calls["?"] += 1
    return calls
