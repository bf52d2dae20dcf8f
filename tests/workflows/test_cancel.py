"""Cancel: a queued run never starts; a running one has its step's whole process tree killed,
ends "Cancelled" within 2 s, and its later steps never start. Real worker, real sandbox."""
from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from django.db import transaction

from audit.models import AuditEvent
from runs.lifecycle import CancelToken
from tests.conftest import wait_for, wait_for_final
from tests.workflows.test_sandbox import cgroup_dirs, removed_soon
from tests.workflows.test_workflow_runs import make_workflow, run
from workflows import runner, sandbox
from workflows.models import StepRun, WorkflowRun
from workflows.sandbox import SandboxPool, StepLimits, launch


def processes_with(marker: str) -> set[int]:
    """Live processes (zombies are dead) named ``marker`` or with ``marker`` as an argument."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            name = Path(f"/proc/{entry}/comm").read_text().strip()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if (name == marker or marker.encode() in argv) and state not in "ZX":
            found.add(int(entry))
    return found


def stubborn_step(marker: str, *, leave_session: bool = True) -> str:
    """Step code: names itself ``marker``, prints, starts a child that ignores SIGTERM (and, with
    ``leave_session``, leaves the step's session and process group) and sleeps for an hour with
    ``marker`` on its command line, then sleeps 60 s itself."""
    setsid = "    os.setsid()\n" if leave_session else ""
    return (f"import ctypes, os, signal, sys, time\n"
            f"ctypes.CDLL(None).prctl(15, {marker.encode()!r}, 0, 0, 0)\n"
            "print('started; the password is', Env.db_password, flush=True)\n"
            "if os.fork() == 0:\n"
            "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            f"{setsid}"
            f"    os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(3600)', {marker!r}])\n"
            "time.sleep(60)\n"
            "return 'first finished'")


# --- Through the pages, with a real worker ------------------------------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_cancel_kills_the_running_steps_whole_tree_and_later_steps_never_start(logged_in_client):
    marker = "cxl" + uuid.uuid4().hex[:8]
    workflow = make_workflow("stubborn", ("first", stubborn_step(marker)), ("second", "return 'second ran'"),
                             timeout_s=120)
    logged_in_client.post(f"/workflows/{workflow.pk}/run/", HTTP_HX_REQUEST="true")
    run_id = WorkflowRun.objects.latest("pk").pk
    pids = wait_for(lambda: len(found := processes_with(marker)) >= 2 and found, timeout=30,
                    message="the step and its child to be running")
    # Its own memory and pids groups (cpu is the parent all steps share).
    step_cgroups = ([d for c, d in cgroup_dirs(min(pids)).items() if c != "cpu"]
                    if sandbox.isolation().cgroups else [])
    page = logged_in_client.get(f"/workflows/{workflow.pk}/runs/{run_id}/", HTTP_HX_REQUEST="true").content.decode()
    assert f'action="/workflows/{workflow.pk}/runs/{run_id}/cancel/"' in page and ">Cancel</button>" in page

    asked = time.monotonic()
    response = logged_in_client.post(f"/workflows/{workflow.pk}/runs/{run_id}/cancel/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "Cancelling…" in response.content.decode()
    finished = wait_for_final(WorkflowRun, run_id, timeout=10)
    took = time.monotonic() - asked

    assert finished.status == "cancelled" and finished.error == "Cancelled while running."
    assert took < 2, f"the run ended {took:.2f} s after Cancel"
    assert processes_with(marker) == set(), "no process of the cancelled step may survive"
    steps = list(StepRun.objects.filter(run_id=run_id))
    assert [(s.step_name, s.status) for s in steps] == [("first", "cancelled")], "the second step must never start"
    assert steps[0].stdout.startswith("started; the password is ")  # what it printed before, masked
    assert "hunter2-very-secret" not in steps[0].stdout and "••••••••" in steps[0].stdout
    assert AuditEvent.objects.filter(action="cancel_run", object_id=str(workflow.pk), detail__run=run_id).exists()
    assert "Cancelled while running." in logged_in_client.get(
        f"/workflows/{workflow.pk}/runs/{run_id}/").content.decode()

    # Nothing of the step is left behind, and the worker's pool goes on.
    assert removed_soon(*step_cgroups), "the cancelled step's cgroup must be removed"
    after = run(logged_in_client, make_workflow("after", ("only", "return 6 * 7")))
    assert (after.status, after.output) == ("succeeded", 42)


@pytest.mark.django_db(transaction=True)
def test_a_queued_run_cancelled_before_a_worker_takes_it_never_runs(logged_in_client, user, celery_worker):
    workflow = make_workflow("queued", ("first", "return 'it ran'"))
    with transaction.atomic():  # the worker is sent the run only when this commits: after the Cancel
        queued = runner.submit(workflow, user)
        response = logged_in_client.post(f"/workflows/{workflow.pk}/runs/{queued.pk}/cancel/")
    assert response.status_code == 302 and response["Location"] == f"/workflows/{workflow.pk}/runs/{queued.pk}/"
    wait_for(lambda: f"workflow run {queued.pk} is no longer queued; skipping" in celery_worker.log(),
             timeout=30, message="the worker to receive the cancelled run")
    queued.refresh_from_db()
    assert (queued.status, queued.error, queued.started_at) == ("cancelled", "Cancelled before it started.", None)
    assert not StepRun.objects.filter(run=queued).exists()
    html = logged_in_client.get(f"/workflows/{workflow.pk}/runs/{queued.pk}/").content.decode()
    assert "Cancelled before it started." in html and ">Cancel</button>" not in html


# --- The sandbox alone --------------------------------------------------------------

@pytest.mark.parametrize("confinement", ["as configured", "process group only"])
def test_a_cancelled_step_is_killed_with_every_process_it_started(confinement):
    """As configured here: bubblewrap's PID namespace and (as root) a cgroup per step. With
    neither, the step's process group is all that finds its children (one that leaves its
    session escapes it: see the uid fallback), so this child stays in the group."""
    if confinement == "as configured":
        pool = SandboxPool(size=1)
    else:
        found = launch.plain_process("bubblewrap is switched off for this test")
        pool = SandboxPool(size=0, isolation=replace(found, cgroups=None, uids=None))
    marker = "cxs" + uuid.uuid4().hex[:8]
    code = stubborn_step(marker, leave_session=confinement == "as configured")
    token = CancelToken()
    outcome: list[sandbox.StepResult] = []
    step = threading.Thread(target=lambda: outcome.append(pool.run_step(
        code, step_name="first", env={"CREDTOOL_APP_ENV_DB_PASSWORD": "pw"}, limits=StepLimits(timeout_s=60),
        cancel=token)))
    try:
        step.start()
        wait_for(lambda: len(processes_with(marker)) >= 2, timeout=30, message="the step and its child")
        asked = time.monotonic()
        token.cancel()
        step.join(timeout=10)
        took = time.monotonic() - asked
    finally:
        pool.shutdown()
    result = outcome[0]
    assert result.cancelled and not result.ok and result.error.message == "Cancelled while running."
    assert took < 1, f"the step returned {took:.2f} s after the cancel"
    assert result.stdout == "started; the password is pw\n"
    assert processes_with(marker) == set(), "no process of the cancelled step may survive"
