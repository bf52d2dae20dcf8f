"""Faults survived: a worker killed mid-query, a database connection killed while idle."""
from __future__ import annotations

import os
import shutil
import signal

import pytest

from runs.models import WORKER_LOST
from integrations.models import Integration, QueryRun
from integrations.tasks import run_query
from tests.conftest import start_worker, stop_worker, wait_for, wait_for_final

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


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
        integration = Integration.objects.create_with_default(
            name="Restarting", kind="postgres", created_by=user,
            config={"host": "127.0.0.1", "port": server.port, "database": "postgres", "username": "postgres",
                    "sslmode": "disable"},
            secrets={"password": localpg.SUPERUSER_PASSWORD})

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


class PrivateRedis:
    """A redis-server of the test's own, restartable: it keeps nothing across a restart, like CI's."""

    def __init__(self) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None
        self.start()

    def start(self) -> None:
        import subprocess

        self.process = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", "no"], stdout=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: self.command("PING") == "PONG", timeout=10, message="redis")

    def restart(self) -> None:
        """Killed with what it holds, and back empty."""
        self.process.kill()
        self.process.wait()
        self.start()

    def command(self, *words: str) -> str:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(("*%d\r\n" % len(words) + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)).encode())
                return s.recv(64).decode().strip().lstrip("+:")
        except OSError:
            return ""

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def queue_runs(integration, redis: PrivateRedis, count: int) -> list[int]:
    """Runs whose ids go to ``redis``; a publish that fails leaves its run queued (a worker resends it)."""
    import uuid

    from kombu import Connection

    from credtool.celery import app

    runs = []
    for _ in range(count):
        run = QueryRun.objects.create(integration=integration, sent_at=timezone_now(),
                                      sql=f"insert into hits values ('{uuid.uuid4()}') returning marker")
        runs.append(run.pk)
        try:
            with Connection(redis.url, connect_timeout=1) as connection:
                app.send_task(QueryRun.task_name, args=[run.pk], connection=connection, retry=False)
        except Exception:
            pass
    return runs


def assert_each_ran_once(runs, target_db):
    for pk in runs:
        wait_for_final(QueryRun, pk, timeout=30)
    assert QueryRun.objects.filter(pk__in=runs, status="succeeded").count() == len(runs)
    with target_db.admin() as conn:
        assert conn.execute("select count(*) from hits").fetchone()[0] == len(runs)


@pytest.fixture
def hits(target_db):
    with target_db.admin() as conn:
        conn.execute("DROP TABLE IF EXISTS hits; CREATE TABLE hits (marker uuid PRIMARY KEY); "
                     "ALTER TABLE hits OWNER TO app_user")


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server to restart a broker of its own")
def test_messages_lost_in_a_broker_restart_are_sent_again_and_run_once(integration, target_db, hits, tmp_path):
    redis = PrivateRedis()
    worker = None
    try:
        runs = queue_runs(integration, redis, 30)  # nobody consumes them yet
        assert redis.command("LLEN", "celery") == "30"
        redis.restart()
        assert redis.command("LLEN", "celery") == "0"  # the broker lost them all
        worker = start_worker(tmp_path / "worker.log", {"CELERY_BROKER_URL": redis.url, "CREDTOOL_RUN_LEASE_S": "3",
                                                        "CREDTOOL_RUN_RESEND_AFTER_S": "2"}, concurrency=4)
        assert_each_ran_once(runs, target_db)
        assert "queued run(s) to the broker again" in worker.log()
    finally:
        if worker is not None:
            stop_worker(worker)
        redis.stop()


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server to restart a broker of its own")
def test_a_broker_restart_under_load_loses_no_run_and_runs_none_twice(integration, target_db, hits, tmp_path):
    """Restarts while the worker is busy: it reconnects instead of dying, and no run is lost or doubled."""
    redis = PrivateRedis()
    worker = start_worker(tmp_path / "worker.log", {"CELERY_BROKER_URL": redis.url, "CREDTOOL_RUN_LEASE_S": "3",
                                                    "CREDTOOL_RUN_RESEND_AFTER_S": "2"}, concurrency=4)
    try:
        runs = []
        for _ in range(3):
            runs += queue_runs(integration, redis, 40)
            redis.restart()
        runs += queue_runs(integration, redis, 20)
        assert_each_ran_once(runs, target_db)
        assert worker.process.poll() is None, worker.log()[-3000:]
        assert "Unrecoverable error" not in worker.log()
    finally:
        stop_worker(worker)
        redis.stop()


def timezone_now():
    from django.utils import timezone

    return timezone.now()
