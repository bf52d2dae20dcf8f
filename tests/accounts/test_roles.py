"""Admin, Builder and Runner: what each may see and do, enforced on the server."""
from __future__ import annotations

import pytest

from integrations.models import Integration
from workflows.models import Workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def integrations(user):
    shared = Integration.objects.create_with_default(name="Shared", kind="postgres", config={
        "host": "db.internal", "port": 5432, "database": "app", "username": "app_user", "sslmode": "prefer"})
    private = Integration.objects.create_with_default(name="Private", kind="postgres",
                                                      config={"host": "secret-host.internal"})
    return shared, private


@pytest.fixture
def runner_client(client, runner, integrations):
    integrations[0].share_with(runner)
    client.force_login(runner)
    return client


def test_runner_sees_only_shared_integrations_and_none_of_their_configuration(runner_client, integrations):
    shared, private = integrations
    listing = runner_client.get("/integrations/").content.decode()
    assert "Shared" in listing and "Private" not in listing
    assert "New integration" not in listing
    page = runner_client.get(f"/integrations/{shared.pk}/").content.decode()
    assert "Run query" in page and "db.internal" not in page and "app_user" not in page and ">Edit<" not in page
    assert runner_client.get(f"/integrations/{private.pk}/").status_code == 404


def test_runner_cannot_configure_anything(runner_client, integrations):
    shared, _ = integrations
    for method, url in [("get", "/integrations/new/"), ("get", f"/integrations/{shared.pk}/edit/"),
                        ("post", f"/integrations/{shared.pk}/edit/"), ("post", f"/integrations/{shared.pk}/delete/"),
                        ("post", "/integrations/test-connection/"), ("post", "/integrations/preview-credentials/"),
                        ("get", "/workflows/new/"), ("get", "/audit/")]:
        assert getattr(runner_client, method)(url).status_code == 403, url
    assert Integration.objects.count() == 2


def test_runner_can_query_a_shared_integration_but_not_another(runner_client, integrations):
    shared, private = integrations
    assert runner_client.post(f"/integrations/{shared.pk}/query/", {"sql": "select 1"}).status_code == 302
    assert runner_client.post(f"/integrations/{private.pk}/query/", {"sql": "select 1"}).status_code == 404


def test_builder_configures_but_cannot_read_the_audit_log(logged_in_client, integrations):
    assert logged_in_client.get("/integrations/new/").status_code == 200
    assert logged_in_client.get(f"/integrations/{integrations[1].pk}/edit/").status_code == 200
    assert logged_in_client.get("/audit/").status_code == 403
    assert "Audit log" not in logged_in_client.get("/integrations/").content.decode()


def test_admin_reads_the_audit_log(admin_client):
    page = admin_client.get("/audit/")
    assert page.status_code == 200 and "Audit log" in page.content.decode()


def test_a_user_without_a_role_sees_nothing(client, django_user_model, integrations):
    nobody = django_user_model.objects.create_user("nobody", password="x" * 12)
    client.force_login(nobody)
    assert client.get("/integrations/").status_code == 403
    assert client.get("/workflows/").status_code == 403


def test_runner_may_run_but_not_edit_workflows(runner_client):
    workflow = Workflow.objects.create(name="w")
    assert runner_client.get(f"/workflows/{workflow.pk}/").status_code == 200
    assert runner_client.get(f"/workflows/{workflow.pk}/edit/").status_code == 403
    assert runner_client.post(f"/workflows/{workflow.pk}/delete/").status_code == 403


def test_admins_manage_users_and_roles_in_the_admin(client, django_user_model):
    from django.contrib.auth.models import Group

    ada = django_user_model.objects.create_user("ada", password="x" * 12)
    ada.groups.add(Group.objects.get(name="Admin"))
    ada.refresh_from_db()
    assert ada.is_staff
    client.force_login(ada)
    assert client.get("/admin/auth/user/").status_code == 200
    assert client.get("/admin/auth/group/").status_code == 200
    ada.groups.clear()
    ada.refresh_from_db()
    assert not ada.is_staff


def test_production_settings_pass_the_deploy_check(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "CREDTOOL_DEBUG": "false", "DJANGO_SECRET_KEY": "p" * 30 + "Q9!x" * 10,
           "DJANGO_ALLOWED_HOSTS": "credtool.example.com", "CREDTOOL_VAR_DIR": str(tmp_path)}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # the browser tests' setting, not production's
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_runner_sees_a_workflows_parameters_but_never_its_steps(runner_client):
    from workflows.models import Step

    workflow = Workflow.objects.create(name="w", description="Counts things",
                                       parameters=[{"name": "region", "default": "eu-west-1"}])
    Step.objects.create(workflow=workflow, position=0, name="secretStep", code="return 'SECRET-CODE-MARKER'")
    page = runner_client.get(f"/workflows/{workflow.pk}/").content.decode()
    assert "Counts things" in page and "params.region" in page and 'value="eu-west-1"' in page
    assert "SECRET-CODE-MARKER" not in page and "secretStep" not in page
    assert "SECRET-CODE-MARKER" not in runner_client.get("/workflows/").content.decode()


def test_a_runner_sees_only_their_own_runs_and_only_their_outputs(runner_client, runner, user, integrations):
    from integrations.models import QueryRun
    from workflows.models import StepRun, WorkflowRun

    shared, _ = integrations
    QueryRun.objects.create(integration=shared, user=user, sql="select 'ALICE-SQL'", status="succeeded")
    QueryRun.objects.create(integration=shared, user=runner, sql="select 'ROB-SQL'", status="succeeded")
    page = runner_client.get(f"/integrations/{shared.pk}/").content.decode()
    assert "ROB-SQL" in page and "ALICE-SQL" not in page

    workflow = Workflow.objects.create(name="w")
    theirs = WorkflowRun.objects.create(workflow=workflow, user=user, status="succeeded", output={"who": "ALICE-OUT"})
    mine = WorkflowRun.objects.create(workflow=workflow, user=runner, status="succeeded", output={"who": "ROB-OUT"})
    StepRun.objects.create(run=mine, position=0, step_name="first", status="succeeded", output={"who": "ROB-OUT"},
                           stdout="STEP-STDOUT-MARKER")
    assert runner_client.get(f"/workflows/{workflow.pk}/runs/{theirs.pk}/").status_code == 404
    page = runner_client.get(f"/workflows/{workflow.pk}/runs/{mine.pk}/").content.decode()
    assert "ROB-OUT" in page and "STEP-STDOUT-MARKER" not in page  # the response, not the steps' insides
    assert "ALICE" not in runner_client.get(f"/workflows/{workflow.pk}/").content.decode()


def test_a_workflow_that_reads_an_unshared_integration_is_refused_with_a_reason(runner_client, integrations):
    _, private = integrations
    workflow = Workflow.objects.create(name="getSecrets")
    default = private.default_configuration
    default.fetch_credentials, default.credentials_workflow = True, workflow
    default.save()
    response = runner_client.post(f"/workflows/{workflow.pk}/run/")
    assert response.status_code == 403
    assert "uses an integration that is not shared with you" in response.content.decode()
    assert "getSecrets" not in runner_client.get("/workflows/").content.decode()
