"""Workflows edited in the web form and run by a real Celery worker, each step in the sandbox."""
from __future__ import annotations

import pytest

from tests.conftest import wait_for
from runs.models import FINAL_STATUSES
from workflows.models import Step, Workflow, WorkflowRun

pytestmark = pytest.mark.django_db(transaction=True)


def editor_data(name: str, steps: list[tuple[str, str]], **extra: str) -> dict[str, str]:
    data = {"name": name, "description": "", "steps-TOTAL_FORMS": str(len(steps)), "steps-INITIAL_FORMS": "0",
            "params-TOTAL_FORMS": "0", "params-INITIAL_FORMS": "0"}
    for i, (step_name, code) in enumerate(steps):
        data.update({f"steps-{i}-name": step_name, f"steps-{i}-code": code, f"steps-{i}-timeout_s": "30"})
    data.update(extra)
    return data


def make_workflow(name: str, *steps: tuple[str, str], timeout_s: int = 30, parameters=None) -> Workflow:
    workflow = Workflow.objects.create(name=name, parameters=parameters or [])
    for i, (step_name, code) in enumerate(steps):
        Step.objects.create(workflow=workflow, position=i, name=step_name, code=code, timeout_s=timeout_s)
    return workflow


def run(client, workflow: Workflow, **params: str) -> WorkflowRun:
    data = {f"param-{k}": v for k, v in params.items()}
    response = client.post(f"/workflows/{workflow.pk}/run/", data, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    run_id = WorkflowRun.objects.latest("pk").pk
    return wait_for(lambda: (r := WorkflowRun.objects.get(pk=run_id)).status in FINAL_STATUSES and r,
                    timeout=40, message="the workflow run to finish")


def page_of(client, run: WorkflowRun) -> str:
    return client.get(f"/workflows/{run.workflow_id}/runs/{run.pk}/").content.decode()


# --- The editor (no worker) ------------------------------------------------------------

def test_new_workflow_is_saved_with_its_steps_in_order(logged_in_client):
    response = logged_in_client.post("/workflows/new/", editor_data(
        "getSecrets", [("first", "return 1"), ("second", "return first.output + 1")]))
    workflow = Workflow.objects.get(name="getSecrets")
    assert response.status_code == 302 and response["Location"] == f"/workflows/{workflow.pk}/"
    assert [s.name for s in workflow.steps.all()] == ["first", "second"]


def test_syntax_error_is_shown_beside_the_code_and_nothing_is_saved(logged_in_client):
    response = logged_in_client.post("/workflows/new/", editor_data("broken", [("first", "x = (\nreturn 1")]))
    html = response.content.decode()
    assert response.status_code == 200 and "Syntax error, line" in html
    assert "nothing was saved" in html and not Workflow.objects.exists()


def test_duplicate_step_names_and_bad_names_are_refused(logged_in_client):
    html = logged_in_client.post("/workflows/new/", editor_data(
        "2bad", [("a", "return 1"), ("a", "return 2")])).content.decode()
    assert "Use letters, digits and underscores" in html
    html = logged_in_client.post("/workflows/new/", editor_data(
        "good", [("a", "return 1"), ("a", "return 2")])).content.decode()
    assert "Step names must be unique: a." in html
    assert not Workflow.objects.exists()


def test_add_move_and_remove_steps_keep_what_was_typed(logged_in_client):
    data = editor_data("w", [("first", "return 'one'"), ("second", "return 'two'")])
    html = logged_in_client.post("/workflows/editor/steps/", {**data, "action": "add"}).content.decode()
    assert 'name="steps-TOTAL_FORMS" value="3"' in html and "step3" in html and "return &#x27;one&#x27;" in html
    html = logged_in_client.post("/workflows/editor/steps/", {**data, "action": "up-1"}).content.decode()
    assert html.index('value="second"') < html.index('value="first"')
    html = logged_in_client.post("/workflows/editor/steps/", {**data, "action": "remove-0"}).content.decode()
    assert 'name="steps-TOTAL_FORMS" value="1"' in html and 'value="first"' not in html


def test_editing_bumps_the_revision(logged_in_client):
    workflow = make_workflow("w", ("first", "return 1"))
    logged_in_client.post(f"/workflows/{workflow.pk}/edit/", editor_data("w", [("first", "return 2")]))
    workflow.refresh_from_db()
    assert workflow.revision == 2 and workflow.steps.get().code == "return 2"


# --- Runs through the worker ----------------------------------------------------------------

@pytest.mark.usefixtures("celery_worker")
def test_run_shows_env_values_and_computed_output(logged_in_client):
    workflow = make_workflow("hello", ("greet", 'return {"greeting": Env.greeting, "n": 40 + 2}'))
    finished = run(logged_in_client, workflow)
    assert finished.status == "succeeded", finished.error
    assert finished.output == {"greeting": "hello from the worker", "n": 42}
    html = page_of(logged_in_client, finished)
    assert "hello from the worker" in html and "42" in html


@pytest.mark.usefixtures("celery_worker")
def test_second_step_reads_the_first_steps_output_and_params(logged_in_client):
    workflow = make_workflow(
        "chain", ("first", 'return {"n": 2}'), ("second", "return first.output['n'] * int(params.factor)"),
        parameters=[{"name": "factor", "default": "10"}])
    assert run(logged_in_client, workflow).output == 20
    assert run(logged_in_client, workflow, factor="21").output == 42


@pytest.mark.usefixtures("celery_worker")
def test_a_raising_step_shows_type_message_and_line_and_later_steps_do_not_run(logged_in_client):
    workflow = make_workflow("fails", ("first", "x = 1\ny = 2\nraise ValueError('no such secret')"),
                             ("second", "return 'never'"))
    finished = run(logged_in_client, workflow)
    assert finished.status == "failed" and finished.error_step == "first"
    step = finished.step_runs.get()
    assert (step.error_type, step.error_message, step.error_line) == ("ValueError", "no such secret", 3)
    run_section = page_of(logged_in_client, finished).split('id="workflow-run"')[1].split("<h2>Steps</h2>")[0]
    assert "ValueError" in run_section and "on line 3" in run_section
    assert "second" not in run_section


@pytest.mark.usefixtures("celery_worker")
def test_an_endless_step_times_out(logged_in_client):
    workflow = make_workflow("spin", ("loop", "while True: pass"), timeout_s=2)
    finished = run(logged_in_client, workflow)
    assert finished.status == "timed_out"
    assert "timed out" in finished.error
    assert "Timed out" in page_of(logged_in_client, finished)


@pytest.mark.usefixtures("celery_worker")
def test_a_step_sees_none_of_the_apps_secrets_in_its_environment(logged_in_client):
    workflow = make_workflow("environ", ("env", "import os\nreturn dict(os.environ)"))
    finished = run(logged_in_client, workflow)
    environ = finished.output
    for name in ("DJANGO_SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "CREDTOOL_ENCRYPTION_KEY",
                 "CREDTOOL_APP_ENV_GREETING", "CREDTOOL_VAR_DIR"):
        assert name not in environ
    assert set(environ) <= {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PWD", "AWS_EC2_METADATA_DISABLED"}


@pytest.mark.usefixtures("celery_worker")
def test_secret_looking_keys_are_masked_in_the_preview_and_the_record(logged_in_client):
    workflow = make_workflow("secrets", (
        "fetch", 'print("the password is", Env.db_password)\n'
                 'return {"user": "app", "password": Env.db_password, "nested": [{"apiToken": Env.db_password[:6] + "-tok"}]}'))
    finished = run(logged_in_client, workflow)
    assert finished.output == {"user": "app", "password": "••••••••", "nested": [{"apiToken": "••••••••"}]}
    step = finished.step_runs.get()
    assert "hunter2-very-secret" not in step.stdout and "••••••••" in step.stdout
    html = page_of(logged_in_client, finished)
    assert "hunter2-very-secret" not in html and "hunter-tok" not in html


@pytest.mark.usefixtures("celery_worker")
def test_a_secret_copied_under_a_harmless_key_is_masked_by_its_value(logged_in_client):
    workflow = make_workflow("copies", (
        "first", 'return {"password": Env.greeting + "-copied", "PWD": "/step"}'), (
        "second", 'print("leaking", first.output["password"])\n'
                  'return {"leak": first.output["password"], "note": "pw=" + first.output["password"], '
                  '"PWD": first.output["PWD"]}'))
    finished = run(logged_in_client, workflow)
    assert finished.status == "succeeded", finished.error
    assert finished.output == {"leak": "••••••••", "note": "pw=••••••••", "PWD": "/step"}
    second = finished.step_runs.get(step_name="second")
    assert second.output["leak"] == "••••••••" and "hello from the worker-copied" not in second.stdout
    assert "hello from the worker-copied" not in page_of(logged_in_client, finished)


@pytest.mark.usefixtures("celery_worker")
def test_a_secret_in_an_error_is_masked_by_its_value(logged_in_client):
    workflow = make_workflow("raises", ("first", 'return {"token": Env.greeting[::-1]}'),
                             ("second", 'raise ValueError("bad " + first.output["token"])'))
    finished = run(logged_in_client, workflow)
    assert finished.status == "failed" and "hello from the worker"[::-1] not in finished.error
    assert "bad ••••••••" in finished.step_runs.get(step_name="second").error_message


@pytest.mark.usefixtures("celery_worker")
def test_no_op_saves_log_no_changed_fields_and_keep_the_revision(logged_in_client):
    from audit.models import AuditEvent

    workflow = make_workflow("w", ("first", "return 1"))
    data = editor_data("w", [("first", "return 1")])
    logged_in_client.post(f"/workflows/{workflow.pk}/edit/", data)
    workflow.refresh_from_db()
    assert workflow.revision == 1
    assert AuditEvent.objects.get(action="change").detail["fields"] == []
    logged_in_client.post(f"/workflows/{workflow.pk}/edit/", {**data, "description": "now described"})
    assert AuditEvent.objects.filter(action="change").latest("pk").detail["fields"] == ["description"]


@pytest.mark.usefixtures("celery_worker")
def test_every_run_is_recorded_with_who_and_how_long(logged_in_client, user):
    workflow = make_workflow("once", ("first", "return 1"))
    finished = run(logged_in_client, workflow)
    assert finished.user == user and finished.trigger == "manual"
    assert finished.duration_ms is not None and finished.finished_at is not None
    assert "Recent runs" in logged_in_client.get(f"/workflows/{workflow.pk}/").content.decode()


@pytest.mark.usefixtures("celery_worker")
def test_a_step_cannot_signal_the_worker_or_open_the_apps_database(logged_in_client, celery_worker):
    from django.db import connection

    database = connection.settings_dict["NAME"]
    workflow = make_workflow("escape", ("probe", (
        "import os, signal\n"
        "try:\n    os.kill(int(params.pid), signal.SIGTERM)\n    signalled = True\n"
        "except ProcessLookupError:\n    signalled = False\n"
        "try:\n    open(params.db, 'rb').read(16)\n    opened = True\n"
        "except OSError:\n    opened = False\n"
        "return {'signalled': signalled, 'opened': opened}")),
        parameters=[{"name": "pid", "default": str(celery_worker.process.pid)}, {"name": "db", "default": database}])
    finished = run(logged_in_client, workflow)
    assert finished.output["signalled"] is False
    assert celery_worker.process.poll() is None  # still alive
    if connection.vendor == "sqlite":
        assert finished.output["opened"] is False
