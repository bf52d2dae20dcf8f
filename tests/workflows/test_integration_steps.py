"""Integration steps: a workflow step that queries an integration on the worker, its bindings sent as the
driver's bound parameters. Real worker, real PostgreSQL, MariaDB and HTTP API."""
from __future__ import annotations

import time

import pytest

from audit.models import AuditEvent
from devtools.localapi import LocalApi
from integrations.models import Integration, QueryRun
from integrations.workflow_steps import names_refused
from profiles.models import Profile
from tests.conftest import make_user, wait_for, wait_for_final
from workflows import access, runner
from workflows.models import Step, StepRun, StepType, Workflow, WorkflowRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

INJECTION = "x' or '1'='1"


@pytest.fixture
def runner_user(django_user_model):
    return make_user(django_user_model, "rita", "Runner")


def workflow_of(name: str, *steps: tuple, parameters=None) -> Workflow:
    """Steps are ("name", "python code") or ("name", integration, "request")."""
    workflow = Workflow.objects.create(name=name, parameters=parameters or [])
    for i, step in enumerate(steps):
        if len(step) == 2:
            Step.objects.create(workflow=workflow, position=i, name=step[0], code=step[1])
        else:
            Step.objects.create(workflow=workflow, position=i, name=step[0], step_type=StepType.INTEGRATION,
                                integration=step[1], code=step[2], timeout_s=30)
    return workflow


def run(workflow: Workflow, user, **params) -> WorkflowRun:
    submitted = runner.submit(workflow, user, params=params)
    return wait_for_final(WorkflowRun, submitted.pk, timeout=40)


def steps_of(run_: WorkflowRun) -> dict[str, StepRun]:
    return {s.step_name: s for s in StepRun.objects.filter(run=run_)}


def test_a_sql_binding_is_a_bound_parameter_so_an_injection_shaped_value_finds_nothing(integration, user, target_db):
    workflow = workflow_of(
        "lookup", ("customer", integration, "select name, balance from customers where name = {{params.name}}"),
        parameters=[{"name": "name", "default": "Ada Lovelace"}])

    found = run(workflow, user)
    assert found.status == "succeeded", found.error
    assert found.output == {"columns": ["name", "balance"], "rows": [{"name": "Ada Lovelace", "balance": "120.50"}],
                            "truncated": False, "row_count": 1, "status": "SELECT 1"}

    injected = run(workflow, user, name=INJECTION)
    assert injected.status == "succeeded", injected.error
    assert injected.output["rows"] == []
    with target_db.admin() as conn:
        assert conn.execute("select count(*) from customers").fetchone()[0] == 3

    # The console's path: the audit log names the step and the request as written, never a value.
    event = AuditEvent.objects.filter(action="run_query", object_id=str(integration.pk)).latest("at")
    assert event.detail["step"] == "customer" and event.detail["workflow_run"] == injected.pk
    assert event.detail["sql"].endswith("where name = {{params.name}}") and INJECTION not in str(event.detail)


def test_mysql_binds_the_same_way(mysql_integration, user, mysql_target):
    workflow = workflow_of(
        "stock", ("qty", mysql_integration, "select item, qty from orders where item = {{params.item}} "
                                            "or item like '%{{params.item}}%'"),
        parameters=[{"name": "item", "default": "apple"}])
    # A binding inside a quoted string would be pasted text: refused before anything is sent.
    refused = run(workflow, user)
    assert refused.status == "failed" and "inside a quoted string" in refused.error

    Step.objects.filter(workflow=workflow).update(
        code="select item, qty from orders where item = {{params.item}} and note is null -- 100%")
    assert run(workflow, user).output["rows"] == [{"item": "apple", "qty": 3}]
    assert run(workflow, user, item=INJECTION).output["rows"] == []
    assert run(workflow, user, item="apple\\' or 1=1 -- ").output["rows"] == []
    with mysql_target.admin() as conn, conn.cursor() as cursor:
        cursor.execute("select count(*) from orders")
        assert cursor.fetchone()[0] == 3


def test_a_python_step_reads_the_integration_steps_output_and_a_later_query_binds_it(integration, user):
    workflow = workflow_of(
        "chain",
        ("everyone", integration, "select name from customers order by id"),
        ("second", "return everyone.output['rows'][1]['name']"),
        ("again", integration, "select email from customers where name = {{second.output}}"),
    )
    finished = run(workflow, user)
    assert finished.status == "succeeded", finished.error
    assert steps_of(finished)["second"].output == "Grace Hopper"
    assert finished.output["rows"] == [{"email": "grace@example.com"}]


def test_an_unknown_name_fails_the_step_before_anything_is_sent(integration, user):
    workflow = workflow_of("typo", ("q", integration, "select 1 where 1 = {{params.nmae}}"),
                           parameters=[{"name": "name", "default": "x"}])
    before = AuditEvent.objects.filter(action="run_query").count()
    failed = run(workflow, user)
    assert failed.status == "failed" and failed.error_step == "q"
    assert 'no key "nmae"' in failed.error and 'did you mean "name"' in failed.error
    assert AuditEvent.objects.filter(action="run_query").count() == before


def test_a_rest_step_url_encodes_the_query_string_and_json_encodes_the_body(user):
    api = LocalApi(secret="tok-steps")
    try:
        rest = Integration.objects.create_with_default(
            name="Echo API", kind="rest", created_by=user, statement_timeout_s=10,
            config={"base_url": api.url + "/", "auth": "bearer", "verify_tls": True},
            secrets={"bearer_token": "tok-steps"})
        workflow = workflow_of(
            "echo",
            ("send", rest, 'POST /echo?q={{params.q}}\n\n{"q": {{params.q}}, "note": "said {{params.q}}", '
                           '"n": {{params.n}}}'),
            ("status", "return send.output['status']"),
            parameters=[{"name": "q", "default": 'a&b=c "d"'}, {"name": "n", "default": "5"}])
        finished = run(workflow, user)
        assert finished.status == "succeeded", finished.error
        sent = steps_of(finished)["send"].output
        assert sent["status"] == 200 and sent["headers"]["content-type"] == "application/json"
        assert sent["body"]["path"] == "/echo?q=a%26b%3Dc%20%22d%22"
        assert sent["body"]["body"] == {"q": 'a&b=c "d"', "note": 'said a&b=c "d"', "n": 5}
        # The bearer token the API echoed back is masked in the record.
        assert "tok-steps" not in str(sent) and finished.output == 200

        Step.objects.filter(workflow=workflow, name="send").update(code="GET /nowhere")
        missing = run(workflow, user)
        assert missing.status == "failed" and "the API answered 404" in missing.error
    finally:
        api.stop()


def test_a_runner_may_run_it_only_where_the_steps_integration_is_shared(integration, runner_user):
    workflow = workflow_of("shared_only", ("q", integration, "select 1"))
    production, staging = Profile.objects.get(key="production"), Profile.objects.get(key="staging")
    assert "not shared with you" in access.run_refusal(runner_user, workflow)
    integration.share_with(runner_user, profiles=[staging])
    assert access.run_refusal(runner_user, workflow) == ""
    assert access.run_refusal(runner_user, workflow, staging) == ""
    assert "not shared with you under Production" in access.run_refusal(runner_user, workflow, production)

    # Queued while shared, unshared before the worker took it: the worker refuses too.
    submitted = runner.submit(workflow, runner_user, profile=staging)
    integration.shares.all().delete()
    finished = wait_for_final(WorkflowRun, submitted.pk, timeout=40)
    assert finished.status == "failed" and "is not shared with" in finished.error


def test_cancel_stops_a_long_query_on_its_server_and_later_steps_never_start(integration, user, target_db):
    workflow = workflow_of("slow", ("sleep", integration, "select pg_sleep(60)"), ("after", "return 1"))
    submitted = runner.submit(workflow, user)

    def sleeping() -> bool:
        with target_db.admin() as conn:
            # The SELECT is read through a cursor: what is active is its FETCH, sleeping.
            return bool(conn.execute("select 1 from pg_stat_activity where wait_event = 'PgSleep' "
                                     "and datname = current_database()").fetchone())

    wait_for(sleeping, timeout=30, message="the query to be running")
    asked = time.monotonic()
    runner.cancel(WorkflowRun.objects.get(pk=submitted.pk))
    finished = wait_for_final(WorkflowRun, submitted.pk, timeout=10)
    assert finished.status == "cancelled" and time.monotonic() - asked < 2
    assert [(s.step_name, s.status) for s in StepRun.objects.filter(run=finished)] == [("sleep", "cancelled")]
    wait_for(lambda: not sleeping(), timeout=5, message="the server to have stopped the statement")


def test_deleting_an_integration_a_step_uses_is_refused(logged_in_client, integration):
    workflow_of("uses_it", ("q", integration, "select 1"))
    response = logged_in_client.post(f"/integrations/{integration.pk}/delete/", follow=True)
    assert Integration.objects.filter(pk=integration.pk).exists()
    assert "uses_it" in response.content.decode()


@pytest.mark.parametrize("template, problem", [
    ("select {{params.item}}", ""),
    ("select {{first.output.rows[0].id}}", ""),
    ("select {{params.nope}}", "there is no parameter “nope” (parameters: item)"),
    ("select {{later.output}}", "“later” is neither params nor an earlier step (earlier steps: first)"),
    ("select {{first.rows}}", "a step is read as first.output"),
    ("select {{params.item", 'unclosed "{{"'),
])
def test_the_editor_names_a_binding_that_cannot_work(template, problem):
    refusal = names_refused(template, ["item"], ["first"])
    assert (problem in refusal) if problem else refusal == ""


# --- The editor --------------------------------------------------------------------------

def integration_step_data(name: str, integration: Integration, **fields: str) -> dict[str, str]:
    data = {"name": name, "description": "", "steps-TOTAL_FORMS": "1", "steps-INITIAL_FORMS": "0",
            "params-TOTAL_FORMS": "1", "params-INITIAL_FORMS": "0", "params-0-name": "item",
            "params-0-default": "apple", "steps-0-name": "q", "steps-0-step_type": "integration",
            "steps-0-integration": str(integration.pk), "steps-0-timeout_s": "30"}
    data.update({f"steps-0-{k}": v for k, v in fields.items()})
    return data


def test_the_editor_saves_an_integration_step_and_shows_it_again(logged_in_client, integration):
    response = logged_in_client.post("/workflows/new/", integration_step_data(
        "stock", integration, sql="select {{params.item}}", code="return 'typed before switching'"))
    assert response.status_code == 302, response.content.decode()[-3000:]
    step = Step.objects.get(workflow__name="stock")
    assert (step.step_type, step.integration_id, step.code) == ("integration", integration.pk, "select {{params.item}}")

    html = logged_in_client.get(f"/workflows/{step.workflow_id}/edit/").content.decode()
    assert '<option value="integration" selected>Integration</option>' in html
    assert f'<option value="{integration.pk}" selected>Target (PostgreSQL)</option>' in html
    assert ">Query</label>" in html and "select {{params.item}}</textarea>" in html
    detail = logged_in_client.get(f"/workflows/{step.workflow_id}/").content.decode()
    assert "Integration <a" in detail and "Target</a>" in detail


def test_the_editor_refuses_an_unknown_name_beside_the_query_and_saves_nothing(logged_in_client, integration):
    html = logged_in_client.post("/workflows/new/", integration_step_data(
        "typo", integration, sql="select {{params.itme}}")).content.decode()
    assert "there is no parameter “itme” (parameters: item)" in html and "nothing was saved" in html
    html = logged_in_client.post("/workflows/new/", integration_step_data(
        "none", integration, sql="")).content.decode()
    assert "Write a query to run." in html
    data = integration_step_data("unchosen", integration)
    del data["steps-0-integration"]
    assert "Choose the integration this step queries." in logged_in_client.post("/workflows/new/", data).content.decode()
    assert not Workflow.objects.exists()


def test_switching_the_step_type_shows_that_types_fields_and_keeps_what_was_typed(logged_in_client, integration):
    rest = Integration.objects.create_with_default(name="Orders API", kind="rest",
                                                   config={"base_url": "https://api.example.com", "auth": "none"})
    data = integration_step_data("w", integration, sql="select 1", code="return 'kept'")
    html = logged_in_client.post("/workflows/editor/steps/", {**data, "action": "refresh"}).content.decode()
    assert ">Query</label>" in html and ">Code</label>" not in html and "return &#x27;kept&#x27;" in html

    html = logged_in_client.post("/workflows/editor/steps/", {
        **data, "steps-0-integration": str(rest.pk), "action": "refresh"}).content.decode()
    assert ">Method</label>" in html and ">Path</label>" in html and ">Body</label>" in html

    html = logged_in_client.post("/workflows/editor/steps/", {
        **data, "steps-0-step_type": "python", "action": "refresh"}).content.decode()
    assert ">Code</label>" in html and ">Query</label>" not in html and 'value="select 1"' in html


def test_a_rest_steps_body_must_be_json_with_its_bindings_as_values(logged_in_client):
    rest = Integration.objects.create_with_default(name="Orders API", kind="rest",
                                                   config={"base_url": "https://api.example.com", "auth": "none"})
    ok = integration_step_data("ok", rest, method="POST", path="/orders/{{params.item}}",
                               body='{"item": {{params.item}}, "note": "for {{params.item}}"}')
    assert logged_in_client.post("/workflows/new/", ok).status_code == 302
    assert Step.objects.get(workflow__name="ok").code == (
        'POST /orders/{{params.item}}\n\n{"item": {{params.item}}, "note": "for {{params.item}}"}')
    bad = integration_step_data("bad", rest, method="POST", path="/orders", body='{"item": {{params.item}},}')
    assert "The body is not valid JSON" in logged_in_client.post("/workflows/new/", bad).content.decode()


# --- Integration steps in credentials workflows ---------------------------------------------

def fetched_integration(name: str, workflow: Workflow, target_db) -> Integration:
    return Integration.objects.create_with_default(
        name=name, kind="postgres", fetch_credentials=True, credentials_workflow=workflow, credentials_cache_s=0,
        config={"host": target_db.host, "port": target_db.port, "database": target_db.database,
                "username": "{{vault.response.username}}", "password": "{{vault.response.password}}",
                "sslmode": "prefer"})


def test_a_credentials_workflow_may_read_them_from_another_integration(logged_in_client, integration, target_db):
    with target_db.admin() as conn:
        conn.execute("create table if not exists vault (username text, password text)")
        conn.execute("grant select on vault to app_user")
        conn.execute("delete from vault")
        conn.execute("insert into vault values (%s, %s)", (target_db.username, target_db.password))
    vault = workflow_of("vault", ("row", integration, "select username, password from vault"),
                        ("pick", "return row.output['rows'][0]"))
    reporting = fetched_integration("Reporting", vault, target_db)
    logged_in_client.post(f"/integrations/{reporting.pk}/query/", {"sql": "select current_user"},
                          HTTP_HX_REQUEST="true")
    query = wait_for_final(QueryRun, QueryRun.objects.latest("pk").pk, timeout=40)
    assert query.status == "succeeded", query.error
    assert query.results[0]["rows"] == [[target_db.username]]
    # The password read by the Integration step is masked in the credentials run's record.
    fetched = WorkflowRun.objects.filter(workflow=vault, trigger="credentials").latest("pk")
    assert target_db.password not in str(fetched.output) + str([s.output for s in steps_of(fetched).values()])


def test_a_credentials_workflow_that_queries_its_own_integration_fails_and_says_why(logged_in_client, target_db):
    loop = Workflow.objects.create(name="loop")
    looping = fetched_integration("Looping", loop, target_db)
    Step.objects.create(workflow=loop, position=0, name="row", step_type=StepType.INTEGRATION, integration=looping,
                        code="select 1")
    logged_in_client.post(f"/integrations/{looping.pk}/query/", {"sql": "select 1"}, HTTP_HX_REQUEST="true")
    query = wait_for_final(QueryRun, QueryRun.objects.latest("pk").pk, timeout=40)
    assert query.status == "failed" and "queries the integration whose credentials it fetches: a loop" in query.error
