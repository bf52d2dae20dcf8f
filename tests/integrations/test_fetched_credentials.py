"""Fetched credentials end to end: AWS Secrets Manager (moto's server) -> workflow -> bindings -> PostgreSQL.

Everything here is real: the worker process, the sandboxed boto3 step, the
secret in moto, the database and its role. One workflow run is one
GetSecretValue call, so run records count the secrets-manager calls.
"""
from __future__ import annotations

import json
import time

import pytest

from integrations.models import ConnectionCheck, Integration, QueryRun
from tests.conftest import result, wait_for_final
from workflows.models import Step, Workflow, WorkflowRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

GET_SECRETS = """\
import boto3, json
client = boto3.session.Session().client(
    service_name="secretsmanager", region_name="us-east-1", endpoint_url=Env.aws_endpoint_url,
    aws_access_key_id=Env.aws_access_key_id, aws_secret_access_key=Env.aws_secret_access_key)
secret = client.get_secret_value(SecretId=params.secret_id)["SecretString"]
return json.loads(secret)
"""
BINDINGS = {"host": "{{getSecrets.response.host}}", "port": "{{getSecrets.response.port}}",
            "database": "{{getSecrets.response.dbname}}", "username": "{{getSecrets.response.username}}",
            "password": "{{getSecrets.response.password}}", "sslmode": "prefer"}


@pytest.fixture
def secret_id(secretsmanager, target_db, request):
    name = f"postgresSecrets-{request.node.name}"[:500]
    secretsmanager.create_secret(Name=name, SecretString=json.dumps(secret_payload(target_db)))
    yield name
    secretsmanager.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)


def secret_payload(target_db, **overrides):
    payload = {"host": target_db.host, "port": target_db.port, "dbname": target_db.database,
               "username": target_db.username, "password": target_db.password}
    payload.update(overrides)
    return payload


@pytest.fixture
def workflow(secret_id):
    workflow = Workflow.objects.create(name="getSecrets", parameters=[{"name": "secret_id", "default": secret_id}])
    Step.objects.create(workflow=workflow, position=0, name="fetch", code=GET_SECRETS, timeout_s=20)
    return workflow


@pytest.fixture
def integration(workflow, user):
    return Integration.objects.create_with_default(
        name="Fetched", kind="postgres", created_by=user, fetch_credentials=True, credentials_workflow=workflow,
        credentials_cache_s=300, config=BINDINGS)


def save_default(integration, **fields) -> None:
    """Set ``fields`` on the integration's Default configuration and save it."""
    default = integration.default_configuration
    for name, value in fields.items():
        setattr(default, name, value)
    default.save()


@pytest.fixture
def rotated_password(target_db):
    original = target_db.password
    yield
    target_db.set_password(original)


def query(client, integration, sql="select current_user, count(*) as customers from customers") -> QueryRun:
    client.post(f"/integrations/{integration.pk}/query/", {"sql": sql}, HTTP_HX_REQUEST="true")
    return wait_for_final(QueryRun, QueryRun.objects.latest("pk").pk, timeout=40)


def credential_fetches(workflow) -> int:
    return WorkflowRun.objects.filter(workflow=workflow, trigger="credentials").count()


def test_query_connects_with_credentials_from_the_secret(logged_in_client, integration, workflow):
    run = query(logged_in_client, integration)
    assert run.status == "succeeded", run.error_text
    assert result(run)["rows"] == [["app_user", 3]]
    assert credential_fetches(workflow) == 1
    fetch_run = WorkflowRun.objects.get(workflow=workflow, trigger="credentials")
    assert fetch_run.output["password"] == "••••••••" and fetch_run.output["host"]


def test_queries_within_the_cache_time_reuse_one_fetch(logged_in_client, integration, workflow):
    for _ in range(4):
        assert query(logged_in_client, integration).status == "succeeded"
    assert credential_fetches(workflow) == 1


def test_cache_time_zero_runs_the_workflow_before_every_query(logged_in_client, integration, workflow):
    save_default(integration, credentials_cache_s=0)
    for _ in range(3):
        assert query(logged_in_client, integration).status == "succeeded"
    assert credential_fetches(workflow) == 3


def test_editing_the_integration_or_the_workflow_fetches_again(logged_in_client, integration, workflow):
    query(logged_in_client, integration)
    save_default(integration, revision=integration.default_configuration.revision + 1)
    query(logged_in_client, integration)
    assert credential_fetches(workflow) == 2
    workflow.revision += 1
    workflow.save()
    query(logged_in_client, integration)
    assert credential_fetches(workflow) == 3


def test_a_query_right_after_rotation_succeeds(logged_in_client, integration, workflow, secretsmanager,
                                               secret_id, target_db, rotated_password):
    assert query(logged_in_client, integration).status == "succeeded"
    new_password = "rotated-" + str(time.time_ns())
    target_db.set_password(new_password)
    secretsmanager.put_secret_value(SecretId=secret_id, SecretString=json.dumps(secret_payload(target_db)))
    with target_db.admin() as conn:  # the old sessions go too, as they would after a restart
        conn.execute("select pg_terminate_backend(pid) from pg_stat_activity where usename = 'app_user'")
    run = query(logged_in_client, integration)
    assert run.status == "succeeded", run.error_text
    assert credential_fetches(workflow) == 2


def test_a_wrong_password_in_the_secret_fails_once_without_looping(logged_in_client, integration, workflow,
                                                                   secretsmanager, secret_id, target_db):
    secretsmanager.put_secret_value(SecretId=secret_id,
                                    SecretString=json.dumps(secret_payload(target_db, password="wrong-one")))
    run = query(logged_in_client, integration)
    assert run.status == "failed" and run.error_stage == "connection"
    assert 'password authentication failed for user "app_user"' in run.error
    assert "wrong-one" not in run.error
    assert credential_fetches(workflow) == 2  # the first fetch, and one refetch after the refusal


def test_a_missing_secret_fails_at_the_workflow_stage(logged_in_client, integration, workflow):
    workflow.parameters = [{"name": "secret_id", "default": "no-such-secret"}]
    workflow.save()
    run = query(logged_in_client, integration)
    assert run.status == "failed" and run.error_stage == "workflow"
    assert "ResourceNotFoundException" in run.error
    assert "Workflow failed" in logged_in_client.get(f"/integrations/{integration.pk}/runs/{run.pk}/").content.decode()


def test_an_unreachable_secrets_manager_fails_at_the_workflow_stage(logged_in_client, integration, workflow):
    Step.objects.filter(workflow=workflow).update(
        code=GET_SECRETS.replace("endpoint_url=Env.aws_endpoint_url", "endpoint_url='http://127.0.0.1:9'"))
    run = query(logged_in_client, integration)
    assert run.status == "failed" and run.error_stage == "workflow"
    assert "EndpointConnectionError" in run.error or "Could not connect" in run.error
    # The service comes back: the next query fetches again by itself (a failure is never cached).
    Step.objects.filter(workflow=workflow).update(code=GET_SECRETS)
    assert query(logged_in_client, integration).status == "succeeded"


def test_a_binding_to_a_missing_field_fails_at_the_binding_stage(logged_in_client, integration):
    save_default(integration, config={**BINDINGS, "host": "{{getSecrets.response.hostname}}"})
    run = query(logged_in_client, integration)
    assert run.status == "failed" and run.error_stage == "binding"
    assert "getSecrets.response.hostname" in run.error and 'no key "hostname"' in run.error


def test_a_workflow_that_times_out_fails_at_the_workflow_stage(logged_in_client, integration, workflow):
    Step.objects.filter(workflow=workflow).update(code="import time\ntime.sleep(30)", timeout_s=1)
    run = query(logged_in_client, integration)
    assert run.status == "failed" and run.error_stage == "workflow" and "timed out" in run.error


@pytest.mark.slow
def test_a_workers_pg_variables_and_password_files_never_fill_an_empty_binding(
        logged_in_client, integration, secretsmanager, secret_id, target_db, tmp_path, user, moto_server):
    """libpq fills what a connection leaves out from PG* variables, PGPASSFILE and ~/.pgpass. A worker
    with all of them holding the real password must still refuse to connect without one."""
    from django.utils import timezone

    from credtool.celery import app
    from tests.conftest import AWS_ENV, start_worker, stop_worker

    from django.conf import settings

    line = f"*:*:*:*:{target_db.password}\n"
    for name in ("pgpass", ".pgpass"):
        (tmp_path / name).write_text(line)
        (tmp_path / name).chmod(0o600)
    env = {"PGPASSWORD": target_db.password, "PGUSER": target_db.username, "PGPASSFILE": str(tmp_path / "pgpass"),
           "HOME": str(tmp_path), "CREDTOOL_APP_ENV_AWS_ENDPOINT_URL": moto_server, **AWS_ENV}
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        # These would also reach the worker's connection to its own PostgreSQL (they are meant to:
        # the operator's settings for it), so only where the app's database is not PostgreSQL.
        env.update(PGTARGETSESSIONATTRS="standby", PGSSLMODE="require", PGOPTIONS="-c default_transaction_read_only=on")
    worker = start_worker(tmp_path / "worker.log", env, concurrency=1, queues="pgenv")
    try:
        secretsmanager.put_secret_value(SecretId=secret_id,
                                        SecretString=json.dumps(secret_payload(target_db, password="")))
        static = Integration.objects.create_with_default(
            name="Static", kind="postgres", created_by=user,
            config={k: v for k, v in target_db.form_values().items() if k != "password"},
            secrets={"password": target_db.password})
        runs = [QueryRun.objects.create(integration=i, sql="create temp table t(i int)", sent_at=timezone.now())
                for i in (integration, static)]
        for run in runs:
            app.send_task(QueryRun.task_name, args=[run.pk], queue="pgenv")
        empty, explicit = (wait_for_final(QueryRun, run.pk, timeout=40) for run in runs)
        assert empty.status == "failed" and empty.error_stage == "connection", empty.error_text
        assert "password" in empty.error
        # The explicit connection takes nothing else from the environment either (standby only,
        # TLS required, a read-only session): it connects and may write.
        assert explicit.status == "succeeded", explicit.error_text
    finally:
        stop_worker(worker)


def test_loading_the_app_leaves_the_pg_environment_alone(tmp_path):
    """The app's own database may need PGSSLROOTCERT and friends: nothing deletes them at import."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import django; django.setup(); import integrations.models, integrations.kinds.postgres, "
            "integrations.execution; import os; print(os.environ.get('PGSSLROOTCERT'), os.environ.get('PGPASSWORD'))")
    env = {**os.environ, "PGSSLROOTCERT": "/etc/ssl/app-db-root.crt", "PGPASSWORD": "app-db",
           "DJANGO_SETTINGS_MODULE": "credtool.settings", "CREDTOOL_VAR_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.stdout.split() == ["/etc/ssl/app-db-root.crt", "app-db"], done.stderr


@pytest.mark.parametrize("key", ["password", "api_token"])
def test_a_fetched_secret_never_shows_in_an_error(logged_in_client, integration, workflow, target_db,
                                                 secretsmanager, secret_id, key):
    """Host bound to a secret by mistake: the connection error names the host, which is the secret,
    whether it is also the password or only sits under a secret-looking key of the response."""
    secret = target_db.password if key == "password" else "tok-" + target_db.password[::-1]
    secretsmanager.put_secret_value(SecretId=secret_id, SecretString=json.dumps(
        {**secret_payload(target_db), "api_token": secret}))
    bindings = {**BINDINGS, "host": "{{getSecrets.response.%s}}" % key}
    save_default(integration, config=bindings)
    run = query(logged_in_client, integration)
    assert run.status == "failed" and run.error_stage == "connection"
    assert secret not in run.error and "••••••••" in run.error
    page = logged_in_client.get(f"/integrations/{integration.pk}/runs/{run.pk}/").content.decode()
    assert secret not in page
    data = {"kind": "postgres", "name": "x", "statement_timeout_s": "30", "fetch_credentials": "on",
            "credentials_workflow": str(workflow.pk), "credentials_cache_s": "300", **bindings}
    logged_in_client.post("/integrations/test-connection/", data, HTTP_HX_REQUEST="true")
    check = wait_for_final(ConnectionCheck, ConnectionCheck.objects.latest("pk").pk, timeout=40)
    assert check.status == "failed" and secret not in check.message


def test_a_password_bound_from_a_harmless_key_is_masked_in_the_fetch_record(
        logged_in_client, integration, workflow, secretsmanager, secret_id, target_db):
    """The secret's key is "pw", which no rule calls secret: bound to Password, it is masked anyway."""
    secretsmanager.put_secret_value(SecretId=secret_id, SecretString=json.dumps(
        {**secret_payload(target_db), "pw": target_db.password, "password": None}))
    save_default(integration, config={**BINDINGS, "password": "{{getSecrets.response.pw}}"})
    assert query(logged_in_client, integration).status == "succeeded"
    record = WorkflowRun.objects.filter(workflow=workflow, trigger="credentials").latest("pk")
    assert record.output["pw"] == "••••••••"


def test_the_cache_time_is_kept_and_then_expires(logged_in_client, integration, workflow):
    import time

    save_default(integration, credentials_cache_s=2)
    started = time.monotonic()
    assert query(logged_in_client, integration).status == "succeeded"
    assert query(logged_in_client, integration).status == "succeeded"
    assert time.monotonic() - started < 2, "the machine is too slow for a 2 s cache"
    assert credential_fetches(workflow) == 1
    time.sleep(2.1)
    assert query(logged_in_client, integration).status == "succeeded"
    assert credential_fetches(workflow) == 2


def test_concurrent_queries_on_a_cold_cache_run_the_workflow_once(logged_in_client, integration, workflow):
    for _ in range(4):
        logged_in_client.post(f"/integrations/{integration.pk}/query/", {"sql": "select 1"})
    for run in QueryRun.objects.all():
        assert wait_for_final(QueryRun, run.pk, timeout=40).status == "succeeded"
    assert credential_fetches(workflow) == 1


def test_credentials_never_reach_the_database_records(logged_in_client, integration, workflow, target_db):
    query(logged_in_client, integration)
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("integrations_queryrun", "integrations_integration", "integrations_configuration",
                      "workflows_workflowrun",
                      "workflows_steprun", "integrations_connectioncheck"):
            cursor.execute(f"select * from {table}")
            assert target_db.password not in json.dumps(cursor.fetchall(), default=str), table


def test_test_connection_runs_the_workflow_and_connects(logged_in_client, workflow, target_db):
    data = {"kind": "postgres", "name": "x", "statement_timeout_s": "30", "fetch_credentials": "on",
            "credentials_workflow": str(workflow.pk), "credentials_cache_s": "300", **BINDINGS}
    logged_in_client.post("/integrations/test-connection/", data, HTTP_HX_REQUEST="true")
    check = wait_for_final(ConnectionCheck, ConnectionCheck.objects.latest("pk").pk, timeout=40)
    assert check.status == "succeeded", check.message
    assert "Connected to PostgreSQL" in check.message
    assert WorkflowRun.objects.filter(workflow=workflow, trigger="test-connection").count() == 1
