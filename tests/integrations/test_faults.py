"""Faults survived: a worker killed mid-query, a database connection killed while idle."""
from __future__ import annotations

import os
import shutil
import signal

import pytest

from runs.models import WORKER_LOST
from integrations.models import Integration, QueryRun
from integrations.tasks import run_query
from tests.conftest import result, start_worker, stop_worker, wait_for, wait_for_final

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture
def integration(target_db, user):
    integration = Integration(name="Target", kind="postgres", created_by=user)
    integration.config = {k: v for k, v in target_db.form_values().items() if k != "password"}
    integration.set_secrets({"password": target_db.password})
    integration.save()
    return integration


@pytest.mark.slow
def test_a_worker_killed_mid_query_ends_its_run_as_failed(logged_in_client, integration, tmp_path):
    victim = start_worker(tmp_path / "victim.log", {"CREDTOOL_RUN_LEASE_S": "3"}, concurrency=1,
                          queues="victim")
    try:
        run = QueryRun.objects.create(integration=integration, sql="select pg_sleep(60)")
        run_query.apply_async((run.pk,), queue="victim")
        wait_for(lambda: QueryRun.objects.get(pk=run.pk).status == "running", message="the victim to start")
        os.killpg(victim.process.pid, signal.SIGKILL)
        victim.process.wait()

        def polled_final():
            logged_in_client.get(f"/integrations/{integration.pk}/runs/{run.pk}/", HTTP_HX_REQUEST="true")
            return QueryRun.objects.get(pk=run.pk).is_final

        wait_for(polled_final, timeout=20, interval=0.5, message="the lost run to be failed")
        lost = QueryRun.objects.get(pk=run.pk)
        assert lost.status == "failed" and lost.error == WORKER_LOST
    finally:
        stop_worker(victim)


def test_a_pooled_connection_killed_while_idle_is_replaced(logged_in_client, integration, target_db):
    def query():
        logged_in_client.post(f"/integrations/{integration.pk}/query/", {"sql": "select 1 as one"})
        return wait_for_final(QueryRun, QueryRun.objects.latest("pk").pk)

    assert query().status == "succeeded"
    with target_db.admin() as conn:
        conn.execute("select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'credtool'")
    again = query()
    assert again.status == "succeeded", again.error_text


def test_read_only_integrations_refuse_writes(logged_in_client, integration):
    integration.read_only = True
    integration.save()
    logged_in_client.post(f"/integrations/{integration.pk}/query/", {"sql": "update customers set name = name"})
    run = wait_for_final(QueryRun, QueryRun.objects.latest("pk").pk)
    assert run.status == "failed" and "read-only transaction" in run.error
    logged_in_client.post(f"/integrations/{integration.pk}/query/", {"sql": "select count(*) from customers"})
    assert wait_for_final(QueryRun, QueryRun.objects.latest("pk").pk).status == "succeeded"


@pytest.mark.slow
def test_a_database_restart_fails_queries_clearly_and_they_recover(logged_in_client, user):
    from devtools import localpg

    server = localpg.start()
    try:
        integration = Integration(name="Restarting", kind="postgres", created_by=user)
        integration.config = {"host": "127.0.0.1", "port": server.port, "database": "postgres",
                              "username": "postgres", "sslmode": "disable"}
        integration.set_secrets({"password": localpg.SUPERUSER_PASSWORD})
        integration.save()

        def query():
            logged_in_client.post(f"/integrations/{integration.pk}/query/", {"sql": "select 1"})
            return wait_for_final(QueryRun, QueryRun.objects.latest("pk").pk, timeout=30)

        assert query().status == "succeeded"
        server.stop(keep_data=True)
        down = query()
        assert down.status == "failed" and down.error_stage == "connection"
        assert "refused" in down.error.lower()
        server.restart()
        assert query().status == "succeeded"
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server to restart a broker of its own")
def test_a_broker_restart_under_load_loses_no_run_and_runs_none_twice(integration, target_db, tmp_path):
    import socket
    import subprocess
    import time
    import uuid

    from kombu import Connection

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"

    def start_redis() -> subprocess.Popen:
        process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                    "--appendonly", "no"], stdout=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: _answers(port), timeout=10, message="redis")
        return process

    with target_db.admin() as conn:
        conn.execute("DROP TABLE IF EXISTS hits; CREATE TABLE hits (marker uuid PRIMARY KEY); "
                     "ALTER TABLE hits OWNER TO app_user")
    redis = start_redis()
    worker = start_worker(tmp_path / "worker.log", {"CELERY_BROKER_URL": url, "CREDTOOL_RUN_LEASE_S": "3",
                                                    "CREDTOOL_RUN_RESEND_AFTER_S": "3"}, concurrency=4)
    runs = []
    try:
        for i in range(120):
            if i == 40:  # the broker dies with what it holds, and comes back empty
                redis.kill()
                redis.wait()
                redis = start_redis()
            run = QueryRun.objects.create(integration=integration, sent_at=timezone_now(),
                                          sql=f"insert into hits values ('{uuid.uuid4()}') returning marker")
            runs.append(run.pk)
            try:
                with Connection(url, connect_timeout=1) as connection:
                    run_query.apply_async((run.pk,), connection=connection, retry=False)
            except Exception:
                pass  # left queued: the workers send it again
            time.sleep(0.01)
        for pk in runs:
            wait_for_final(QueryRun, pk, timeout=60)
        assert QueryRun.objects.filter(pk__in=runs, status="succeeded").count() == len(runs)
        with target_db.admin() as conn:
            assert conn.execute("select count(*) from hits").fetchone()[0] == len(runs)
    finally:
        stop_worker(worker)
        redis.kill()


def _answers(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def timezone_now():
    from django.utils import timezone

    return timezone.now()
