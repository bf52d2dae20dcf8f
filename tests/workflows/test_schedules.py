"""Schedules: a cron expression on the workflow's form, kept as its django-celery-beat PeriodicTask,
read to people with its next three times, and run by a real `celery beat` with trigger "schedule"."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone as dt_timezone

import pytest
from django_celery_beat.models import PeriodicTask

from profiles.models import Profile
from runs.models import RunStatus
from tests.conftest import ROOT, _test_database_url, die_with_the_suite
from workflows import schedules
from workflows.models import Workflow, WorkflowRun

from .test_parameters import field_group
from .test_workflow_runs import editor_data, make_workflow

pytestmark = pytest.mark.django_db(transaction=True)


def save(client, data: dict[str, str], workflow: Workflow | None = None):
    url = f"/workflows/{workflow.pk}/edit/" if workflow else "/workflows/new/"
    return client.post(url, data)


def test_a_bad_schedule_is_refused_beside_the_field_and_nothing_is_saved(logged_in_client):
    for bad, says in (("61 * * * *", "end range: 61"), ("* * *", "5 fields"), ("*/15 * * * mon-zz", "Invalid")):
        response = save(logged_in_client, editor_data("sched", [("a", "return 1")], schedule=bad))
        assert response.status_code == 200
        html = response.content.decode()
        assert says in field_group(html, "schedule").split('id="schedule-reading"')[0]
        assert not Workflow.objects.exists()
        assert not PeriodicTask.objects.exists()


def test_a_blank_schedule_makes_no_periodic_task(logged_in_client):
    assert save(logged_in_client, editor_data("plain", [("a", "return 1")], schedule="")).status_code == 302
    assert Workflow.objects.get().schedule == ""
    assert not PeriodicTask.objects.filter(task=schedules.TASK_NAME).exists()


def test_saving_a_schedule_creates_updates_and_removes_its_periodic_task(logged_in_client):
    staging = Profile.objects.get(key="staging")
    data = editor_data("nightly", [("a", "return 1")], schedule="  */15  9-17 * * 1-5 ",
                       schedule_profile=str(staging.pk))
    assert save(logged_in_client, data).status_code == 302
    workflow = Workflow.objects.get()
    assert (workflow.schedule, workflow.schedule_profile) == ("*/15 9-17 * * 1-5", staging)
    task = PeriodicTask.objects.get(name=f"workflow-{workflow.pk}")
    assert task.task == schedules.TASK_NAME and task.enabled
    assert json.loads(task.args) == [workflow.pk]  # its id only, nothing else
    cron = task.crontab
    assert (cron.minute, cron.hour, cron.day_of_month, cron.month_of_year, cron.day_of_week) == \
        ("*/15", "9-17", "*", "*", "1-5")

    data["schedule"] = "0 3 * * *"
    assert save(logged_in_client, data, workflow).status_code == 302
    task = PeriodicTask.objects.get(name=f"workflow-{workflow.pk}")
    assert (task.crontab.minute, task.crontab.hour) == ("0", "3")
    assert Workflow.objects.get().revision == workflow.revision  # cached credentials stay valid

    data["schedule"] = ""
    assert save(logged_in_client, data, workflow).status_code == 302
    assert not PeriodicTask.objects.filter(name=f"workflow-{workflow.pk}").exists()


def test_schedule_profile_defaults_to_production(logged_in_client):
    html = logged_in_client.get("/workflows/new/").content.decode()
    production = Profile.objects.get(key="production")
    assert f'<option value="{production.pk}" selected>Production</option>' in html
    assert save(logged_in_client, editor_data("hourly", [("a", "return 1")], schedule="0 * * * *")).status_code == 302
    assert Workflow.objects.get().schedule_profile == production


def test_deleting_a_scheduled_workflow_removes_its_periodic_task(logged_in_client):
    save(logged_in_client, editor_data("gone", [("a", "return 1")], schedule="* * * * *"))
    workflow = Workflow.objects.get()
    assert logged_in_client.post(f"/workflows/{workflow.pk}/delete/").status_code == 302
    assert not PeriodicTask.objects.filter(name=f"workflow-{workflow.pk}").exists()


def test_the_editor_and_the_workflow_page_say_what_a_schedule_means_and_its_next_three_times(logged_in_client):
    html = logged_in_client.get("/workflows/editor/schedule/", {"schedule": "*/15 * * * *"}).content.decode()
    assert "Every 15 minutes" in html and html.count("<time ") == 3 and "UTC" in html
    bad = logged_in_client.get("/workflows/editor/schedule/", {"schedule": "* *"}).content.decode()
    assert "5 fields" in bad

    save(logged_in_client, editor_data("weekdays", [("a", "return 1")], schedule="30 9 * * 1-5"))
    workflow = Workflow.objects.get()
    page = logged_in_client.get(f"/workflows/{workflow.pk}/").content.decode()
    assert "At 09:30, Monday through Friday" in page and page.count("<time ") == 3
    editor = logged_in_client.get(f"/workflows/{workflow.pk}/edit/").content.decode()
    assert "At 09:30, Monday through Friday" in editor


def test_next_times_are_the_next_three_due_times_in_the_servers_time_zone():
    after = datetime(2026, 11, 29, 13, 58, 20, tzinfo=dt_timezone.utc)
    assert [t.strftime("%d %H:%M") for t in schedules.next_times("*/15 * * * *", after=after)] == \
        ["29 14:00", "29 14:15", "29 14:30"]
    assert [t.strftime("%Y-%m-%d") for t in schedules.next_times("0 0 29 2 *", after=after)] == \
        ["2028-02-29", "2032-02-29", "2036-02-29"]


def test_the_beat_task_submits_a_run_with_trigger_schedule_under_the_schedule_profile():
    staging = Profile.objects.get(key="staging")
    workflow = make_workflow("tick", ("a", "return 1"))
    Workflow.objects.filter(pk=workflow.pk).update(schedule="* * * * *", schedule_profile=staging)
    run = schedules.run_scheduled(workflow.pk)
    assert run is not None
    run = WorkflowRun.objects.get(pk=run.pk)
    assert (run.trigger, run.profile, run.user, run.status) == ("schedule", staging, None, RunStatus.QUEUED)


def test_a_scheduled_run_still_queued_or_running_is_not_started_twice():
    workflow = make_workflow("slow", ("a", "return 1"))
    Workflow.objects.filter(pk=workflow.pk).update(schedule="* * * * *")
    first = schedules.run_scheduled(workflow.pk)
    assert schedules.run_scheduled(workflow.pk) is None  # still queued: this tick is skipped
    WorkflowRun.objects.filter(pk=first.pk).update(status=RunStatus.RUNNING)
    assert schedules.run_scheduled(workflow.pk) is None  # still running: skipped
    assert WorkflowRun.objects.filter(workflow=workflow).count() == 1
    WorkflowRun.objects.filter(pk=first.pk).update(status=RunStatus.SUCCEEDED)
    assert schedules.run_scheduled(workflow.pk) is not None  # finished: the next tick runs
    # A manual run going does not hold the schedule back.
    WorkflowRun.objects.filter(workflow=workflow).update(status=RunStatus.SUCCEEDED)
    WorkflowRun.objects.create(workflow=workflow, trigger="manual", status=RunStatus.RUNNING)
    assert schedules.run_scheduled(workflow.pk) is not None


def test_an_unscheduled_or_deleted_workflow_is_not_run():
    workflow = make_workflow("was", ("a", "return 1"))
    assert schedules.run_scheduled(workflow.pk) is None  # its schedule was cleared since beat sent it
    assert schedules.run_scheduled(workflow.pk + 1000) is None
    assert not WorkflowRun.objects.exists()


@pytest.mark.usefixtures("celery_worker")
def test_celery_beat_runs_an_every_minute_schedule_with_trigger_schedule(logged_in_client, tmp_path):
    save(logged_in_client, editor_data("everyMinute", [("a", "return {'at': 'beat'}")], schedule="* * * * *"))
    workflow = Workflow.objects.get()
    log_path = tmp_path / "beat.log"
    env = {**os.environ, "DATABASE_URL": _test_database_url(), "CREDTOOL_LOG_LEVEL": "INFO"}
    with open(log_path, "wb") as log:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "credtool", "beat", "--loglevel=INFO",
             "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_the_suite)
    try:
        deadline = time.monotonic() + 75  # the next minute, and the run itself
        run = None
        while time.monotonic() < deadline and beat.poll() is None:
            run = WorkflowRun.objects.filter(workflow=workflow, trigger="schedule",
                                             status=RunStatus.SUCCEEDED).first()
            if run:
                break
            time.sleep(0.5)
        beat_log = log_path.read_text(errors="replace")
        assert run is not None, f"no scheduled run succeeded within 75 s; beat's log:\n{beat_log[-3000:]}"
        assert run.output == {"at": "beat"} and run.profile == Profile.objects.default()
        page = logged_in_client.get(f"/workflows/{workflow.pk}/").content.decode()
        assert "<td>schedule</td>" in page  # in Recent runs
    finally:
        beat.terminate()
        try:
            beat.wait(timeout=20)
        except subprocess.TimeoutExpired:
            beat.kill()
            beat.wait()
