"""Workers per profile: a worker started with CREDTOOL_WORKER_PROFILES runs only those profiles' runs,
and a run that no live worker serves stays queued and says so on its page.

The workers here are real Celery processes on the configured broker (the filesystem
one in the tests' var/ directory, or Redis when CELERY_BROKER_URL says so). The
session's worker serves every profile, so the tests that need to see a profile
unserved stop it first and start it again afterwards.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from profiles.models import Profile
from runs import lifecycle, workers
from runs.models import WorkerHeartbeat
from tests.conftest import ROOT, Worker, die_with_the_suite, start_worker, stop_worker, wait_for, wait_for_final
from workflows import runner
from workflows.models import Step, StepRun, Workflow, WorkflowRun

pytestmark = [pytest.mark.django_db(transaction=True)]

# Workers beat every second and count as gone 3 s after their last beat; they resend
# a queued run 2 s after it was sent, so a resend that should not happen shows quickly.
FAST = {"CREDTOOL_RUN_LEASE_S": "3", "CREDTOOL_RUN_RESEND_AFTER_S": "2"}


@pytest.fixture
def workflow():
    workflow = Workflow.objects.create(name="Which profile")
    Step.objects.create(workflow=workflow, position=0, name="which", code="return profile", timeout_s=30)
    return workflow


@pytest.fixture
def staging():
    return Profile.objects.get(key="staging")


@pytest.fixture
def production():
    return Profile.objects.get(key="production")


@pytest.fixture(scope="module")
def no_other_worker(request):
    """The session's worker paused for this module: stopped cleanly (which removes its heartbeat)
    and started again afterwards with the same command and environment, for the modules that follow."""
    session_worker: Worker = request.getfixturevalue("celery_worker")
    process = session_worker.process
    environ = dict(item.split("=", 1) for item in
                   open(f"/proc/{process.pid}/environ").read().split("\0") if "=" in item)
    stop_worker(session_worker)
    yield
    ready_before = session_worker.log().count(" ready.")
    with open(session_worker.log_path, "ab") as log:
        session_worker.process = subprocess.Popen(process.args, cwd=ROOT, env=environ, stdout=log,
                                                  stderr=subprocess.STDOUT, start_new_session=True,
                                                  preexec_fn=die_with_the_suite)
    wait_for(lambda: session_worker.log().count(" ready.") > ready_before, timeout=60,
             message="the session's worker to start again")


def serving(profile_key: str) -> bool:
    return workers.live_coverage().covers(profile_key)


def beats(worker: Worker, count: int) -> None:
    """Wait until ``worker`` has renewed its heartbeat ``count`` more times (its watcher's rounds)."""
    seen: list[object] = []

    def renewed() -> bool:
        row = WorkerHeartbeat.objects.filter(pid=worker.process.pid).values_list("last_seen", flat=True).first()
        if row is not None and (not seen or seen[-1] != row):
            seen.append(row)
        return len(seen) > count

    wait_for(renewed, timeout=30, interval=0.1, message=f"{count} heartbeats")


def test_a_staging_worker_runs_staging_only_and_production_waits_for_its_own_worker(
        no_other_worker, workflow, staging, production, logged_in_client, tmp_path):
    staging_worker = start_worker(tmp_path / "staging.log", {"CREDTOOL_WORKER_PROFILES": "staging", **FAST})
    production_worker = None
    try:
        on_staging = runner.submit(workflow, None, profile=staging)
        on_production = runner.submit(workflow, None, profile=production)
        done = wait_for_final(WorkflowRun, on_staging.pk, timeout=60)
        assert done.status == "succeeded" and done.output == "staging", done.error

        # Production's run stays queued, is not sent again and again, and its page says why.
        WorkflowRun.objects.filter(pk=on_production.pk).update(sent_at=timezone.now() - timedelta(minutes=10))
        sent_at = WorkflowRun.objects.get(pk=on_production.pk).sent_at
        beats(staging_worker, 3)
        waiting = WorkflowRun.objects.get(pk=on_production.pk)
        assert waiting.status == "queued" and waiting.sent_at == sent_at
        expected = ("No worker serves the Production profile: start one with CREDTOOL_WORKER_PROFILES=production, "
                    "or without it to serve every profile.")
        assert workers.unserved_message(waiting) == expected
        page = logged_in_client.get(f"/workflows/{workflow.pk}/runs/{waiting.pk}/", HTTP_HX_REQUEST="true")
        html = page.content.decode()
        assert 'role="status"' in html and "No worker serves the Production profile" in html
        assert "hx-trigger" in html  # it keeps polling, so the notice goes once a worker comes
        assert workers.unserved_message(done) == ""

        production_worker = start_worker(tmp_path / "production.log",
                                         {"CREDTOOL_WORKER_PROFILES": "production", **FAST})
        finished = wait_for_final(WorkflowRun, on_production.pk, timeout=60)
        assert finished.status == "succeeded" and finished.output == "production", finished.error
        assert StepRun.objects.filter(run=finished).count() == 1  # once
        assert f"workflow run {on_production.pk} " not in staging_worker.log()
    finally:
        stop_worker(staging_worker)
        if production_worker is not None:
            stop_worker(production_worker)


def test_a_killed_worker_stops_counting_as_serving_once_its_heartbeat_expires(no_other_worker, tmp_path):
    worker = start_worker(tmp_path / "worker.log", {"CREDTOOL_WORKER_PROFILES": "staging", **FAST})
    try:
        wait_for(lambda: serving("staging"), message="the staging worker's first heartbeat")
        assert not serving("production")
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait()
        killed_at = time.monotonic()
        assert serving("staging")  # nobody removed its row: only its age tells
        wait_for(lambda: not serving("staging"), timeout=20, message="the killed worker's heartbeat to expire")
        assert time.monotonic() - killed_at < 10
        assert WorkerHeartbeat.objects.filter(pid=worker.process.pid).exists()
    finally:
        stop_worker(worker)


def test_a_worker_stopped_cleanly_stops_counting_at_once(no_other_worker, tmp_path):
    # The default lease (30 s): only the removal of its row at shutdown can make it stop counting now.
    worker = start_worker(tmp_path / "worker.log", {"CREDTOOL_WORKER_PROFILES": "staging"})
    wait_for(lambda: serving("staging"), message="the staging worker's first heartbeat")
    stop_worker(worker)
    assert not serving("staging")


def test_a_worker_for_every_profile_serves_profiles_created_after_it_started(no_other_worker, workflow, tmp_path):
    worker = start_worker(tmp_path / "worker.log", FAST)
    try:
        wait_for(lambda: serving("production"), message="the worker's first heartbeat")
        qa = Profile.objects.create(key="qa", name="QA")
        assert serving("qa")
        run = runner.submit(workflow, None, profile=qa)
        done = wait_for_final(WorkflowRun, run.pk, timeout=60)
        assert done.status == "succeeded" and done.output == "qa", done.error
        assert "profile qa was created" in worker.log()
    finally:
        stop_worker(worker)


def test_a_worker_for_a_profile_not_created_yet_warns_and_serves_it_once_created(
        no_other_worker, workflow, tmp_path):
    worker = start_worker(tmp_path / "worker.log", {"CREDTOOL_WORKER_PROFILES": "qa", **FAST})
    try:
        assert "CREDTOOL_WORKER_PROFILES names qa, which no profile has" in worker.log()
        qa = Profile.objects.create(key="qa", name="QA")
        run = runner.submit(workflow, None, profile=qa)
        done = wait_for_final(WorkflowRun, run.pk, timeout=60)
        assert done.status == "succeeded" and done.output == "qa", done.error
    finally:
        stop_worker(worker)


# --- Routing, without a worker -----------------------------------------------------

@pytest.fixture
def published(monkeypatch):
    """What goes to the broker: (task name, run id, queue) for each message."""
    from credtool.celery import app

    messages: list[tuple[str, int, str | None]] = []
    monkeypatch.setattr(app, "send_task", lambda name, args, queue=None, **kwargs: messages.append(
        (name, args[0], queue)))
    return messages


def test_a_run_goes_to_its_profiles_queue_and_one_without_a_profile_to_the_default_profiles(
        workflow, staging, published):
    on_staging = WorkflowRun.objects.create(workflow=workflow, profile=staging)
    unset = WorkflowRun.objects.create(workflow=workflow, profile=None)
    assert lifecycle.send(WorkflowRun, on_staging.pk) and lifecycle.send(WorkflowRun, unset.pk)
    assert published == [(WorkflowRun.task_name, on_staging.pk, "credtool.profile.staging"),
                         (WorkflowRun.task_name, unset.pk, "credtool.profile.production")]


def test_queued_runs_are_sent_again_only_for_profiles_a_live_worker_serves(workflow, staging, production, published):
    now = timezone.now()
    WorkerHeartbeat.objects.create(hostname="staging@agent", pid=1, profile_keys=["staging"], last_seen=now,
                                   expires_at=now + timedelta(seconds=30))
    WorkerHeartbeat.objects.create(hostname="gone@agent", pid=2, every_profile=True, last_seen=now,
                                   expires_at=now - timedelta(seconds=1))
    old = now - timedelta(minutes=10)
    on_staging = WorkflowRun.objects.create(workflow=workflow, profile=staging, sent_at=old)
    on_production = WorkflowRun.objects.create(workflow=workflow, profile=production, sent_at=old)
    assert lifecycle.resend_lost_runs() == 1
    assert published == [(WorkflowRun.task_name, on_staging.pk, "credtool.profile.staging")]
    assert WorkflowRun.objects.get(pk=on_production.pk).sent_at == old
    assert "No worker serves the Production profile" in workers.unserved_message(on_production)
    assert workers.unserved_message(on_staging) == ""
