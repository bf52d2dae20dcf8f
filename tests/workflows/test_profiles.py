"""A workflow runs under a profile: steps read its key as ``profile`` and its own Env values.

Env is read from the environment of the process that runs the steps: the Env
tests run the worker-side code (``runner.run_now``, ``runner.execute``) in this
process, with ``monkeypatch`` on ``os.environ``; the form tests go through the
real Celery worker.
"""
from __future__ import annotations

import pytest

from profiles.models import Profile
from runs.models import RunStatus
from tests.conftest import wait_for_final
from tests.workflows.test_workflow_runs import make_workflow, page_of, run
from workflows import access, runner, sandbox
from workflows.models import WorkflowRun

pytestmark = pytest.mark.django_db(transaction=True)

PROD_SECRET = "prod-hunter2-secret"
STAGING_SECRET = "staging-only-hunter3"


@pytest.fixture
def profiles() -> dict[str, Profile]:
    # Seeded by a migration, but a transactional test's flush empties the table.
    return {key: Profile.objects.get_or_create(key=key, defaults={"name": name})[0]
            for key, name in (("production", "Production"), ("staging", "Staging"))}


@pytest.fixture
def per_profile_env(monkeypatch):
    """The worker's environment: one shared value, and Staging's own password and region."""
    monkeypatch.setenv("CREDTOOL_APP_ENV_REGION", "eu-west-1")
    monkeypatch.setenv("CREDTOOL_APP_ENV_DB_PASSWORD", PROD_SECRET)
    monkeypatch.setenv("CREDTOOL_PROFILE_STAGING_ENV_DB_PASSWORD", STAGING_SECRET)
    monkeypatch.setenv("CREDTOOL_PROFILE_STAGING_ENV_REGION", "us-east-2")
    monkeypatch.setenv("CREDTOOL_PROFILE_QA_ENV_DB_PASSWORD", "qa-password-elsewhere")


# --- The rule (pure) ------------------------------------------------------------------

def test_a_profile_override_replaces_the_shared_value_for_that_profile_only():
    environ = {"CREDTOOL_APP_ENV_AWS_ACCESS_KEY_ID": "AKIAPROD", "CREDTOOL_APP_ENV_REGION": "eu-west-1",
               "CREDTOOL_PROFILE_STAGING_ENV_AWS_ACCESS_KEY_ID": "AKIASTAGING",
               "CREDTOOL_PROFILE_STAGING_ENV_ONLY_HERE": "x", "CREDTOOL_PROFILE_QA_ENV_REGION": "qa-1",
               "DJANGO_SECRET_KEY": "s"}
    assert sandbox.profile_env_from(environ, "staging") == {
        "CREDTOOL_APP_ENV_AWS_ACCESS_KEY_ID": "AKIASTAGING", "CREDTOOL_APP_ENV_REGION": "eu-west-1",
        "CREDTOOL_APP_ENV_ONLY_HERE": "x"}
    assert sandbox.profile_env_from(environ, "production") == {
        "CREDTOOL_APP_ENV_AWS_ACCESS_KEY_ID": "AKIAPROD", "CREDTOOL_APP_ENV_REGION": "eu-west-1"}


def test_an_empty_profile_override_keeps_the_shared_value_from_that_profile():
    environ = {"CREDTOOL_APP_ENV_AWS_SECRET_ACCESS_KEY": "prod-secret",
               "CREDTOOL_PROFILE_STAGING_ENV_AWS_SECRET_ACCESS_KEY": ""}
    assert sandbox.profile_env_from(environ, "staging") == {"CREDTOOL_APP_ENV_AWS_SECRET_ACCESS_KEY": ""}


def test_a_missing_env_value_names_the_profiles_variable_too():
    result = sandbox.run_step("return Env.nope", step_name="s", env={}, profile="staging")
    assert result.error.message == ("Env.nope is not set: the worker has no CREDTOOL_APP_ENV_NOPE "
                                    "nor CREDTOOL_PROFILE_STAGING_ENV_NOPE")


# --- Worker-side runs, in this process ------------------------------------------------

@pytest.mark.usefixtures("per_profile_env")
def test_env_reads_the_staging_value_under_staging_and_the_shared_one_under_production(profiles):
    workflow = make_workflow("region", ("first", "return [profile, Env.region]"))
    assert runner.run_now(workflow, trigger="manual", profile=profiles["staging"]).response == [
        "staging", "us-east-2"]
    assert runner.run_now(workflow, trigger="manual", profile=profiles["production"]).response == [
        "production", "eu-west-1"]


@pytest.mark.usefixtures("per_profile_env")
def test_a_run_without_a_profile_runs_under_production_and_records_it(profiles):
    workflow = make_workflow("region", ("first", "return [profile, Env.region]"))
    assert runner.run_now(workflow, trigger="manual").response == ["production", "eu-west-1"]
    assert WorkflowRun.objects.get().profile == profiles["production"]


@pytest.mark.usefixtures("per_profile_env")
def test_a_queued_run_runs_under_its_own_profile(profiles):
    workflow = make_workflow("region", ("first", "return [profile, Env.region]"))
    queued = WorkflowRun.objects.create(workflow=workflow, profile=profiles["staging"])
    unset = WorkflowRun.objects.create(workflow=workflow)
    runner.execute(queued.pk)
    runner.execute(unset.pk)
    queued.refresh_from_db()
    unset.refresh_from_db()
    assert queued.status == RunStatus.SUCCEEDED and queued.output == ["staging", "us-east-2"]
    assert unset.profile == profiles["production"] and unset.output == ["production", "eu-west-1"]


@pytest.mark.usefixtures("per_profile_env")
def test_the_staging_password_is_masked_by_its_value_in_the_run_record(profiles):
    workflow = make_workflow("leaks", (
        "first", 'print("using", Env.db_password)\nreturn {"copy": Env.db_password, "note": "pw " + Env.db_password}'))
    outcome = runner.run_now(workflow, trigger="manual", profile=profiles["staging"])
    assert outcome.response["copy"] == STAGING_SECRET  # the worker still has it to use
    recorded = WorkflowRun.objects.get()
    step = recorded.step_runs.get()
    assert recorded.output == {"copy": "••••••••", "note": "pw ••••••••"}
    assert STAGING_SECRET not in step.stdout and "using ••••••••" in step.stdout


# --- The Run workflow form, through the worker -----------------------------------------

def run_under(client, workflow, profile: str) -> WorkflowRun:
    response = client.post(f"/workflows/{workflow.pk}/run/", {"profile": profile}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return wait_for_final(WorkflowRun, WorkflowRun.objects.latest("pk").pk, timeout=40)


@pytest.mark.usefixtures("celery_worker")
def test_a_step_reads_the_profile_chosen_in_the_form(logged_in_client, profiles):
    workflow = make_workflow("which", ("first", "return profile"))
    finished = run_under(logged_in_client, workflow, "staging")
    assert finished.status == "succeeded", finished.error
    assert finished.output == "staging" and finished.profile == profiles["staging"]
    run_section = page_of(logged_in_client, finished).split('id="workflow-run"')[1].split("</header>")[0]
    assert "Staging" in run_section
    recent = logged_in_client.get(f"/workflows/{workflow.pk}/").content.decode().split('id="recent-runs"')[1]
    assert "<td>Staging</td>" in recent


@pytest.mark.usefixtures("celery_worker")
def test_a_run_with_no_profile_chosen_runs_under_production(logged_in_client, profiles):
    workflow = make_workflow("which", ("first", "return profile"))
    finished = run(logged_in_client, workflow)
    assert finished.output == "production" and finished.profile == profiles["production"]


@pytest.mark.usefixtures("celery_worker")
def test_the_profile_select_starts_at_the_last_choice_for_that_workflow(logged_in_client, profiles):
    workflow = make_workflow("which", ("first", "return profile"))
    other = make_workflow("other", ("first", "return 1"))
    html = logged_in_client.get(f"/workflows/{workflow.pk}/").content.decode()
    assert '<label for="id_profile">Profile</label>' in html
    assert '<select name="profile" id="id_profile">' in html
    assert '<option value="production" selected>Production</option>' in html
    assert '<option value="staging">Staging</option>' in html
    run_under(logged_in_client, workflow, "staging")
    html = logged_in_client.get(f"/workflows/{workflow.pk}/").content.decode()
    assert '<option value="staging" selected>Staging</option>' in html
    html = logged_in_client.get(f"/workflows/{other.pk}/").content.decode()
    assert '<option value="production" selected>Production</option>' in html


def test_an_unknown_profile_is_refused_with_a_message_and_nothing_runs(logged_in_client, profiles):
    workflow = make_workflow("which", ("first", "return profile"))
    response = logged_in_client.post(f"/workflows/{workflow.pk}/run/", {"profile": "nope"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "Profile: There is no profile “nope”" in response.content.decode()
    response = logged_in_client.post(f"/workflows/{workflow.pk}/run/", {"profile": "nope"})
    html = response.content.decode()
    assert response.status_code == 200 and "There is no profile “nope”" in html and 'id="id_profile"' in html
    assert not WorkflowRun.objects.exists()


def test_run_checks_are_asked_about_the_chosen_profile(logged_in_client, profiles, monkeypatch):
    asked = []

    def no_staging(user, workflow, profile):
        asked.append(profile)
        return "Not in Staging." if profile is not None and profile.key == "staging" else ""

    monkeypatch.setattr(access, "_run_checks", [*access._run_checks, no_staging])
    workflow = make_workflow("which", ("first", "return profile"))
    response = logged_in_client.post(f"/workflows/{workflow.pk}/run/", {"profile": "staging"},
                                     HTTP_HX_REQUEST="true")
    assert "Profile: Not in Staging." in response.content.decode()
    assert not WorkflowRun.objects.exists() and profiles["staging"] in asked
