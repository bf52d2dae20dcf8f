"""Every kind of run survives the same faults: a broker down at submit, a lost message, a dead worker.

Query runs, workflow runs, credential previews and Test connection share one
lifecycle (runs.lifecycle); each kind is driven here through its own page.
"""
from __future__ import annotations

import os
import signal
from datetime import timedelta

import pytest
from django.utils import timezone
from kombu.exceptions import OperationalError

from credtool.celery import app
from integrations.models import ConnectionCheck, QueryRun
from runs import lifecycle, workers
from runs.models import WORKER_LOST
from tests.conftest import start_worker, stop_worker, wait_for, wait_for_final
from workflows.models import Step, Workflow, WorkflowRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture
def workflow():
    workflow = Workflow.objects.create(name="w")
    Step.objects.create(workflow=workflow, position=0, name="first", code="return {'answer': 42}", timeout_s=30)
    return workflow


@pytest.fixture
def broker_down(monkeypatch):
    """The broker refuses connections, as kombu reports it after its retries."""
    def refused(task_name, run_id, queue):
        raise OperationalError("[Errno 111] Connection refused")

    monkeypatch.setattr(lifecycle, "publish", refused)
    return monkeypatch


def submit_each_kind(client, integration, workflow, target_db):
    """One run of each kind, submitted through its page; returns (model, pk, response) for each."""
    submitted = []
    response = client.post(f"/integrations/{integration.pk}/query/", {"sql": "select 1 as one"},
                           HTTP_HX_REQUEST="true")
    submitted.append((QueryRun, QueryRun.objects.latest("pk").pk, response))
    response = client.post(f"/workflows/{workflow.pk}/run/", HTTP_HX_REQUEST="true")
    submitted.append((WorkflowRun, WorkflowRun.objects.latest("pk").pk, response))
    response = client.post("/integrations/preview-credentials/", {"credentials_workflow": str(workflow.pk)},
                           HTTP_HX_REQUEST="true")
    submitted.append((WorkflowRun, WorkflowRun.objects.latest("pk").pk, response))
    response = client.post("/integrations/test-connection/", {
        "kind": "postgres", "name": "x", "statement_timeout_s": "30", **target_db.form_values()},
        HTTP_HX_REQUEST="true")
    submitted.append((ConnectionCheck, ConnectionCheck.objects.latest("pk").pk, response))
    return submitted


def test_a_broker_down_at_submit_shows_queued_and_every_run_is_sent_again_when_it_is_back(
        logged_in_client, integration, workflow, target_db, broker_down):
    submitted = submit_each_kind(logged_in_client, integration, workflow, target_db)
    for model, pk, response in submitted:
        assert response.status_code == 200, model
        html = response.content.decode()
        assert 'data-status="queued"' in html and "Queued" in html, model
        assert model.objects.get(pk=pk).status == "queued", model
    broker_down.undo()  # the broker is back
    # Runs are resent only to profiles a live worker serves: the session's worker says so in its
    # next heartbeat (the previous test's end emptied the table, its heartbeat with it).
    wait_for(lambda: workers.live_coverage().covers("production"), timeout=20,
             message="the session worker's heartbeat")
    backdated = timezone.now() - timedelta(minutes=10)
    for model, pk, _ in submitted:  # as if the resend delay had passed
        model.objects.filter(pk=pk).update(sent_at=backdated)
    lifecycle.resend_lost_runs()  # here, or by the worker's watcher if its round came first
    for model, pk, _ in submitted:
        assert model.objects.get(pk=pk).sent_at > backdated, model
    for model, pk, _ in submitted:
        assert wait_for_final(model, pk, timeout=40).status == "succeeded", model


@pytest.mark.parametrize("kind", ["query", "workflow", "check"])
def test_a_worker_resends_lost_messages_by_itself(integration, workflow, kind, target_db):
    """As after a broker restart without persistence: the rows are queued, no message exists.
    The session's worker notices within its watcher's cycle and sends them again."""
    old = timezone.now() - timedelta(minutes=10)
    if kind == "query":
        run = QueryRun.objects.create(integration=integration, sql="select 'found again' as status", sent_at=old)
    elif kind == "workflow":
        run = WorkflowRun.objects.create(workflow=workflow, sent_at=old)
    else:
        from credtool import crypto

        values = target_db.form_values()
        run = ConnectionCheck.objects.create(kind="postgres", sent_at=old, config={
            k: v for k, v in values.items() if k != "password"},
            secrets_encrypted=crypto.encrypt_json({"password": values["password"]}))
    assert wait_for_final(type(run), run.pk, timeout=40).status == "succeeded"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["workflow", "preview", "check"])
def test_a_worker_killed_mid_run_ends_the_run_as_failed_and_the_page_says_so(
        logged_in_client, integration, workflow, target_db, tmp_path, kind):
    Step.objects.filter(workflow=workflow).update(code="import time\ntime.sleep(60)", timeout_s=120)
    victim = start_worker(tmp_path / "victim.log", {"CREDTOOL_RUN_LEASE_S": "3"}, concurrency=1, queues="victim")
    try:
        if kind in ("workflow", "preview"):
            run = WorkflowRun.objects.create(workflow=workflow,
                                             trigger="manual" if kind == "workflow" else "preview")
            poll = f"/workflows/{workflow.pk}/runs/{run.pk}/"
        else:
            # Test connection with fetched credentials: the worker runs the (sleeping) workflow first.
            from django.contrib.auth import get_user_model

            run = ConnectionCheck.objects.create(kind="postgres", credentials_workflow=workflow,
                                                 user=get_user_model().objects.get(username="alice"),
                                                 config={**target_db.form_values(), "password": ""})
            poll = f"/integrations/test-connection/{run.pk}/"
        model = type(run)
        app.send_task(model.task_name, args=[run.pk], queue="victim")
        wait_for(lambda: model.objects.get(pk=run.pk).status == "running", message="the victim to start")
        os.killpg(victim.process.pid, signal.SIGKILL)
        victim.process.wait()

        # Once its lease has passed, the first poll of its page ends it, and says why.
        lease_until = model.objects.get(pk=run.pk).lease_until
        wait_for(lambda: timezone.now() > lease_until + timedelta(seconds=0.2), timeout=10, message="the lease")
        page = logged_in_client.get(poll, HTTP_HX_REQUEST="true").content.decode()
        lost = model.objects.get(pk=run.pk)
        assert lost.status == "failed"
        assert "stopped" in page and "before it finished" in page  # the reason, on the page
        assert "spinner" not in page and "hx-trigger" not in page  # polling has stopped
        if kind == "check":
            # The credentials workflow it was running is ended by a worker's watcher, unpolled.
            inner = WorkflowRun.objects.get(workflow=workflow, trigger="test-connection")
            wait_for(lambda: WorkflowRun.objects.get(pk=inner.pk).is_final, timeout=30, interval=0.5,
                     message="the inner workflow run to be failed")
            assert WorkflowRun.objects.get(pk=inner.pk).error == WORKER_LOST
    finally:
        stop_worker(victim)


def test_a_running_run_whose_worker_is_gone_is_failed_by_any_worker(integration):
    """Nobody polls it: the session's worker fails it on its watcher's next round."""
    run = QueryRun.objects.create(integration=integration, sql="select 1", status="running",
                                  started_at=timezone.now(), lease_until=timezone.now() - timedelta(seconds=1))
    lost = wait_for_final(QueryRun, run.pk, timeout=30)
    assert lost.status == "failed" and lost.error == WORKER_LOST
