"""The shared credential cache (CREDTOOL_CREDENTIAL_CACHE): one fetch per entry across worker processes.

Real Redis (database 12 of 127.0.0.1:6379, emptied around every test), real
worker processes started with the setting (each its own process: separate
memory, as separate hosts would be), moto's Secrets Manager and PostgreSQL.
One credentials workflow run is one GetSecretValue call.
"""
from __future__ import annotations

import json
import threading
import time

import pytest
import redis
from django.utils import timezone

from credtool.celery import app
from integrations import shared_cache
from integrations.credentials import shared_key
from integrations.kinds.base import Credentials
from integrations.models import Integration, QueryRun
from profiles.models import Profile
from tests.conftest import AWS_ENV, shares_the_apps_server, start_worker, stop_worker, wait_for_final
# The same fetched-credentials integration, on this module's slower workflow.
from tests.integrations.test_fetched_credentials import BINDINGS, GET_SECRETS, integration, secret_payload  # noqa: F401
from workflows.models import Step, StepType, Workflow, WorkflowRun

pytestmark = [pytest.mark.django_db(transaction=True)]

REDIS_URL = "redis://127.0.0.1:6379/12"
CLOSED_PORT_URL = "redis://127.0.0.1:9/0"
# A slow fetch keeps the lock held while the other process asks: the race is certain, not lucky.
SLOW_GET_SECRETS = "import time\ntime.sleep(1)\n" + GET_SECRETS


def worker_env(moto_server: str, postgres_server_url: str, cache_url: str) -> dict[str, str]:
    return {"CREDTOOL_CREDENTIAL_CACHE": cache_url, "CREDTOOL_APP_ENV_AWS_ENDPOINT_URL": moto_server, **AWS_ENV,
            "CREDTOOL_SANDBOX_POOL": "1",
            "CREDTOOL_INTEGRATION_ALLOW_APP_SERVICES": str(shares_the_apps_server(postgres_server_url))}


@pytest.fixture(scope="module")
def workers(django_db_setup, django_db_blocker, tmp_path_factory, moto_server, postgres_server_url):
    """Two worker processes sharing the cache, each on a queue of its own (so a test chooses which runs what)."""
    logs = tmp_path_factory.mktemp("shared-workers")
    env = worker_env(moto_server, postgres_server_url, REDIS_URL)
    started = []
    try:
        for name in ("shared_a", "shared_b"):
            started.append(start_worker(logs / f"{name}.log", env, concurrency=2, queues=name))
        yield dict(zip(("shared_a", "shared_b"), started))
    finally:
        for worker in started:
            stop_worker(worker)


@pytest.fixture
def shared_redis():
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()  # database 12 only: integration ids restart in every test
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def secret_id(secretsmanager, target_db, request):
    name = f"sharedSecrets-{request.node.name}"[:500]
    secretsmanager.create_secret(Name=name, SecretString=json.dumps(secret_payload(target_db)))
    yield name
    secretsmanager.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)


@pytest.fixture
def workflow(secret_id):
    workflow = Workflow.objects.create(name="getSecrets", parameters=[{"name": "secret_id", "default": secret_id}])
    Step.objects.create(workflow=workflow, position=0, name="fetch", code=SLOW_GET_SECRETS, timeout_s=20)
    return workflow


@pytest.fixture
def rotated_password(target_db):
    original = target_db.password
    yield
    target_db.set_password(original)


def send(integration, *queues: str, sql: str = "select current_user") -> list[int]:
    """One query run per queue, all sent before any is waited for."""
    production = Profile.objects.get(key="production")
    runs = [QueryRun.objects.create(integration=integration, profile=production, sql=sql, sent_at=timezone.now())
            for _ in queues]
    for run, queue in zip(runs, queues):
        app.send_task(QueryRun.task_name, args=[run.pk], queue=queue)
    return [run.pk for run in runs]


def succeeded(*run_ids: int) -> bool:
    for pk in run_ids:
        run = wait_for_final(QueryRun, pk, timeout=60)
        assert run.status == "succeeded", run.error_text
    return True


def credential_fetches(workflow) -> int:
    return WorkflowRun.objects.filter(workflow=workflow, trigger="credentials").count()


def everything_in(client: redis.Redis) -> str:
    """Every key name and value of the database, as text."""
    parts = []
    for key in client.scan_iter(count=1000):
        parts.append(key.decode(errors="replace"))
        value = client.get(key) if client.type(key) == b"string" else client.dump(key)
        parts.append((value or b"").decode(errors="replace"))
    return "\n".join(parts)


def test_credentials_in_redis_and_on_its_wire_are_encrypted(workers, shared_redis, integration, workflow, target_db):
    seen: list[str] = []
    marker = "end-of-test-" + str(time.time_ns())
    watching = threading.Event()

    def monitor() -> None:
        with redis.Redis.from_url(REDIS_URL).monitor() as m:
            watching.set()
            for command in m.listen():
                seen.append(command["command"])
                if marker in command["command"]:
                    return

    watcher = threading.Thread(target=monitor, daemon=True)
    watcher.start()
    assert watching.wait(10)
    assert succeeded(*send(integration, "shared_a"))
    assert succeeded(*send(integration, "shared_b"))  # read back from Redis by another process
    shared_redis.echo(marker)
    watcher.join(10)
    assert not watcher.is_alive()

    assert credential_fetches(workflow) == 1
    keys = [key.decode() for key in shared_redis.keys("credtool:credentials:*")]
    assert len(keys) == 1, keys
    assert 0 < shared_redis.pttl(keys[0]) <= 300_000  # the configuration's cache time
    wire = "\n".join(seen)
    assert "SET" in wire and keys[0] in wire  # the monitor saw the entry written
    stored = everything_in(shared_redis)
    for plaintext in (target_db.password, target_db.username, target_db.database):
        assert plaintext not in stored
        assert plaintext not in wire


def test_two_processes_on_a_cold_entry_run_the_workflow_once(workers, shared_redis, integration, workflow):
    assert succeeded(*send(integration, "shared_a", "shared_b"))
    assert credential_fetches(workflow) == 1
    assert not shared_redis.keys("*:lock")  # its holder let go


def test_a_lock_left_by_a_dead_holder_expires_and_the_query_still_runs(workers, shared_redis, integration, workflow):
    key = shared_key(integration.default_configuration, Profile.objects.get(key="production"))
    # A holder that died: its lock has no one to delete it, only its expiry.
    shared_redis.set(key + ":lock", "dead-holder", px=2000)
    started = time.monotonic()
    run_id, = send(integration, "shared_a")
    assert succeeded(run_id)
    assert time.monotonic() - started >= 2  # it waited for the expiry, then fetched
    assert credential_fetches(workflow) == 1


def test_a_rotation_seen_by_two_processes_refetches_once(workers, shared_redis, integration, workflow,
                                                          secretsmanager, secret_id, target_db, rotated_password):
    assert succeeded(*send(integration, "shared_a"))
    assert credential_fetches(workflow) == 1
    target_db.set_password("rotated-" + str(time.time_ns()))
    secretsmanager.put_secret_value(SecretId=secret_id, SecretString=json.dumps(secret_payload(target_db)))
    with target_db.admin() as conn:  # pooled sessions go too: every process must log in again
        conn.execute("select pg_terminate_backend(pid) from pg_stat_activity where usename = 'app_user'")
    assert succeeded(*send(integration, "shared_a", "shared_b"))
    assert credential_fetches(workflow) == 2
    # Both processes use the replacement from now on, without another fetch.
    assert succeeded(*send(integration, "shared_a", "shared_b"))
    assert credential_fetches(workflow) == 2


def test_editing_the_configuration_or_the_workflow_fetches_again(workers, shared_redis, integration, workflow):
    assert succeeded(*send(integration, "shared_a"))
    assert succeeded(*send(integration, "shared_b"))
    assert credential_fetches(workflow) == 1
    default = integration.default_configuration
    default.revision += 1
    default.save()
    assert succeeded(*send(integration, "shared_b"))
    assert succeeded(*send(integration, "shared_a"))
    assert credential_fetches(workflow) == 2
    workflow.revision += 1
    workflow.save()
    assert succeeded(*send(integration, "shared_a"))
    assert credential_fetches(workflow) == 3


def test_a_cache_time_of_zero_fetches_before_every_query(workers, shared_redis, integration, workflow):
    default = integration.default_configuration
    default.credentials_cache_s = 0
    default.save()
    assert succeeded(*send(integration, "shared_a"))
    assert succeeded(*send(integration, "shared_b"))
    assert credential_fetches(workflow) == 2
    assert not shared_redis.keys("*")


def test_redis_down_falls_back_to_the_process_cache_and_says_so_once(
        shared_redis, integration, workflow, tmp_path, moto_server, postgres_server_url):
    worker = start_worker(tmp_path / "down.log", worker_env(moto_server, postgres_server_url, CLOSED_PORT_URL),
                          concurrency=2, queues="shared_down")
    try:
        for _ in range(3):
            assert succeeded(*send(integration, "shared_down"))
        assert credential_fetches(workflow) == 1  # the per-process cache served the others
        assert worker.log().count("shared credential cache unreachable") == 1
    finally:
        stop_worker(worker)


def test_a_credentials_workflow_querying_its_own_integration_fails_instead_of_waiting_for_itself(
        workers, shared_redis, user, target_db):
    loop = Workflow.objects.create(name="loop")
    looping = Integration.objects.create_with_default(
        name="Looping", kind="postgres", created_by=user, fetch_credentials=True, credentials_workflow=loop,
        credentials_cache_s=300, config={**BINDINGS, "host": target_db.host})
    Step.objects.create(workflow=loop, position=0, name="row", step_type=StepType.INTEGRATION, integration=looping,
                        code="select 1", timeout_s=30)
    started = time.monotonic()
    run = wait_for_final(QueryRun, send(looping, "shared_a")[0], timeout=60)
    assert run.status == "failed" and "queries the integration whose credentials it fetches: a loop" in run.error
    assert time.monotonic() - started < shared_cache.LOCK_S  # it never waited for its own lock
    assert not shared_redis.keys("*:lock")


def test_a_lock_is_released_by_its_holder_only(shared_redis):
    cache = shared_cache.SharedCache(REDIS_URL)
    token = cache.lock("credtool:credentials:test")
    assert token and cache.lock("credtool:credentials:test") is None
    cache.unlock("credtool:credentials:test", "someone-elses-token")
    assert cache.locked("credtool:credentials:test")
    cache.unlock("credtool:credentials:test", token)
    assert not cache.locked("credtool:credentials:test")


def test_after_an_outage_redis_is_asked_again_later_and_the_outage_is_logged_once(shared_redis, monkeypatch, caplog):
    monkeypatch.setattr(shared_cache, "RETRY_AFTER_S", 0.3)
    cache = shared_cache.SharedCache(REDIS_URL)
    working = cache._client
    entry = shared_cache.Entry(Credentials(1, {"password": "pw-" + str(time.time_ns())}), None, reusable=True)
    cache.put("credtool:credentials:test", entry, 10)
    for _ in range(2):  # two outages, one line
        cache._client = redis.Redis.from_url(CLOSED_PORT_URL)
        with pytest.raises(shared_cache.Unavailable):
            cache.get("credtool:credentials:test")
        assert not cache.available()
        with pytest.raises(shared_cache.Unavailable):  # resting: Redis is not even asked
            cache.get("credtool:credentials:test")
        cache._client = working
        time.sleep(0.35)
        assert cache.available()
        assert cache.get("credtool:credentials:test").credentials == entry.credentials
    assert sum("shared credential cache unreachable" in r.getMessage() for r in caplog.records) == 1
