"""Workflow runs and queries through the API, run by a real worker against a real PostgreSQL."""
from __future__ import annotations

import threading

import pytest

from audit.models import AuditEvent
from credtool.masking import MASK
from devtools.localapi import LocalApi
from integrations.models import Integration, QueryRun
from profiles.models import Profile
from tests.api.conftest import Api, token_for
from tests.conftest import wait_for
from tests.workflows.test_workflow_runs import make_workflow
from workflows.models import Step, WorkflowRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def run(api: Api, name: str, body: object = None, wait: str = ""):
    return api.post(f"/api/v1/workflows/{name}/run" + (f"?wait={wait}" if wait else ""), body)


def query(api: Api, integration: Integration, body: object, wait: str = ""):
    return api.post(f"/api/v1/integrations/{integration.name}/query" + (f"?wait={wait}" if wait else ""), body)


# --- Workflow runs ------------------------------------------------------------------

def test_a_workflow_run_answers_when_done_with_its_output_masked(api, user):
    make_workflow("getCreds", ("first", 'return {"password": "hunter2", "user": "x"}'))
    response = run(api, "getCreds")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "done" and body["output"] == {"password": MASK, "user": "x"}
    assert body["id"].startswith("workflow-") and body["profile"] == "production"
    assert isinstance(body["duration_ms"], float) and body["duration_ms"] > 0
    assert b"hunter2" not in response.content
    event = AuditEvent.objects.get(action="api_run_workflow")
    assert event.actor == user and event.object_repr == "getCreds"
    assert event.detail["token"] == "script" and api.secret not in str(event.detail)


def test_a_failed_step_answers_200_failed_naming_the_step(api):
    make_workflow("breaks", ("first", "return 1"), ("second", "raise ValueError('boom')"))
    response = run(api, "breaks")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "failed"
    assert body["error"]["step"] == "second" and "boom" in body["error"]["message"]
    assert "output" not in body


def test_wait_0_answers_202_with_a_url_to_poll(api):
    make_workflow("quick", ("first", "return 41 + 1"))
    response = run(api, "quick", wait="0")
    body = response.json()
    assert response.status_code == 202 and body["status"] == "running"
    assert body["url"] == f"http://testserver/api/v1/runs/{body['id']}"
    polled = api.get(body["url"].removeprefix("http://testserver") + "?wait=30")
    assert polled.status_code == 200 and polled.json()["status"] == "done" and polled.json()["output"] == 42


def test_without_a_thread_to_spare_for_waiting_a_run_answers_202_at_once(api, monkeypatch):
    """API calls that wait never take every thread of the web process: past its waiting slots
    (shared with the console's Runs) the answer is 202 and the url to poll, whatever ?wait= says."""
    from runs import waiting

    make_workflow("busy", ("first", "return 7"))
    monkeypatch.setattr(waiting, "_slots", threading.BoundedSemaphore(1))
    waiting._slots.acquire()
    response = run(api, "busy", wait="30")
    assert response.status_code == 202 and response.json()["status"] in ("queued", "running")
    waiting._slots.release()
    polled = api.get(response.json()["url"].removeprefix("http://testserver") + "?wait=30")
    assert polled.status_code == 200 and polled.json()["output"] == 7


def test_params_and_profile_reach_the_steps(api):
    make_workflow("echo", ("first", "return {'region': params.region, 'profile': profile}"),
                  parameters=[{"name": "region", "default": "eu-west-1"}])
    body = run(api, "echo", {"params": {"region": "us-east-2"}, "profile": "staging"}).json()
    assert body["output"] == {"region": "us-east-2", "profile": "staging"} and body["profile"] == "staging"
    assert run(api, "echo").json()["output"] == {"region": "eu-west-1", "profile": "production"}
    response = run(api, "echo", {"params": {"regoin": "x"}})
    assert response.status_code == 400 and "params.regoin" in response.json()["fields"]


def test_params_follow_the_run_forms_rule(api):
    """Text stays text; where the default is JSON, a value is JSON, typed as text or sent as a value."""
    make_workflow("typed", ("first", "return {'region': params.region, 'count': params.count, 'tags': params.tags}"),
                  parameters=[{"name": "region", "default": "eu"}, {"name": "count", "default": "5"},
                              {"name": "tags", "default": "[]"}])
    body = run(api, "typed", {"params": {"region": "42", "count": "7", "tags": ["a", 1]}}).json()
    assert body["output"] == {"region": "42", "count": 7, "tags": ["a", 1]}
    assert run(api, "typed").json()["output"] == {"region": "eu", "count": 5, "tags": []}
    response = run(api, "typed", {"params": {"count": "seven"}})
    assert response.status_code == 400 and "valid json" in response.json()["fields"]["params.count"][0].lower()


def test_unknown_workflow_profile_or_keys_are_refused(api):
    make_workflow("w", ("first", "return 1"))
    assert run(api, "nope").status_code == 404
    assert run(api, "w", {"profile": "moon"}).status_code == 404
    response = run(api, "w", {"parms": {}})
    assert response.status_code == 400 and "parms" in response.json()["error"]


def test_a_runner_cannot_run_a_workflow_reading_an_integration_not_shared_with_them(client, runner, integration,
                                                                                    target_db):
    fetches = make_workflow("fetchesTarget", ("first", 'return {"password": "x"}'))
    Integration.objects.create_with_default(
        name="Fetched", kind="postgres", config={k: v for k, v in target_db.form_values().items() if k != "password"},
        fetch_credentials=True, credentials_workflow=fetches)
    runner_api = Api(client, token_for(runner))
    assert run(runner_api, "fetchesTarget").status_code == 404
    Integration.objects.get(name="Fetched").share_with(runner, [Profile.objects.get(key="staging")])
    # Shared under Staging only: Production does not exist for them.
    assert run(runner_api, "fetchesTarget", {"profile": "production"}, wait="0").status_code == 404
    assert run(runner_api, "fetchesTarget", {"profile": "staging"}, wait="0").status_code == 202


def test_an_integration_steps_params_are_bound_through_the_api_too(api, client, runner, integration):
    workflow = make_workflow("lookup", ("q", "return 0"), parameters=[{"name": "name", "default": "Ada Lovelace"}])
    Step.objects.filter(workflow=workflow).update(
        step_type="integration", integration=integration,
        code="select email from customers where name = {{params.name}}")
    found = run(api, "lookup").json()
    assert found["status"] == "done" and found["output"]["rows"] == [{"email": "ada@example.com"}], found
    injected = run(api, "lookup", {"params": {"name": "x' or '1'='1"}}).json()
    assert injected["status"] == "done" and injected["output"]["rows"] == []
    # A Runner's token: the step's integration is not shared with them, so the workflow does not exist.
    assert run(Api(client, token_for(runner)), "lookup").status_code == 404


# --- Queries ------------------------------------------------------------------------

def test_a_query_answers_with_columns_and_rows(api, integration):
    response = query(api, integration, {"sql": "select id, name from customers order by id"})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "done", body
    assert body["columns"] == ["id", "name"] and body["rows"][0] == [1, "Ada Lovelace"] and len(body["rows"]) == 3
    assert body["truncated"] is False and body["duration_ms"] > 0 and body["id"].startswith("query-")
    assert len(body["results"]) == 1 and body["results"][0]["message"] == "SELECT 3"
    event = AuditEvent.objects.get(action="api_query")
    assert event.detail["token"] == "script" and event.detail["sql"].startswith("select id")


def test_several_statements_answer_the_last_one_and_every_result(api, integration):
    body = query(api, integration, {"sql": "select 1 as one; select name from customers where id = 2"}).json()
    assert body["columns"] == ["name"] and body["rows"] == [["Grace Hopper"]]
    assert [r["columns"] for r in body["results"]] == [["one"], ["name"]]


def test_a_sql_error_answers_failed_with_its_stage(api, integration):
    body = query(api, integration, {"sql": "selec 1"}).json()
    assert body["status"] == "failed" and body["error"]["stage"] == "query"
    assert 'syntax error at or near "selec"' in body["error"]["message"]


def test_a_query_run_can_be_polled(api, integration):
    response = query(api, integration, {"sql": "select pg_sleep(0.3), 7 as n"}, wait="0")
    assert response.status_code == 202
    polled = api.get(f"/api/v1/runs/{response.json()['id']}?wait=30").json()
    assert polled["status"] == "done" and polled["rows"] == [["", 7]]


def test_a_runner_queries_only_what_is_shared_with_them_and_under_their_profiles(client, runner, integration):
    runner_api = Api(client, token_for(runner))
    response = query(runner_api, integration, {"sql": "select 1"})
    assert response.status_code == 404 and response.json()["error"] == "No integration “Target” shared with you."
    integration.share_with(runner, [Profile.objects.get(key="staging")])
    response = query(runner_api, integration, {"sql": "select 1"})  # the default profile is Production
    assert response.status_code == 404 and "production" in response.json()["error"]
    assert query(runner_api, integration, {"sql": "select 1", "profile": "production"}).status_code == 404
    body = query(runner_api, integration, {"sql": "select 1 as n", "profile": "staging"}).json()
    assert body["status"] == "done" and body["rows"] == [[1]] and body["profile"] == "staging"


def test_another_users_run_does_not_exist_for_a_runner(api, client, runner, integration):
    integration.share_with(runner)
    alices = query(api, integration, {"sql": "select 1"}).json()["id"]
    assert Api(client, token_for(runner)).get(f"/api/v1/runs/{alices}").status_code == 404


def test_a_rest_integration_takes_method_path_and_body(api, user):
    server = LocalApi(secret="tok-api-secret-123")
    try:
        rest = Integration.objects.create_with_default(
            name="Orders API", kind="rest", created_by=user, statement_timeout_s=10,
            config={"base_url": server.url + "/", "auth": "bearer", "headers": "", "verify_tls": True},
            secrets={"bearer_token": "tok-api-secret-123"})
        response = query(api, rest, {"method": "POST", "path": "/echo", "body": {"a": 1}})
        body = response.json()
        assert response.status_code == 200 and body["status"] == "done", body
        assert body["results"][0]["response"]["status"] == 200 and b"tok-api-secret-123" not in response.content
        assert query(api, rest, {"sql": "select 1"}).status_code == 400
    finally:
        server.stop()


# --- The rate limit -----------------------------------------------------------------

def test_a_token_over_its_rate_limit_gets_429_with_retry_after(api, client, user, integration, settings):
    settings.API_RATE_LIMIT = 2
    make_workflow("w", ("first", "return 1"))
    assert run(api, "w", wait="0").status_code == 202
    assert query(api, integration, {"sql": "select 1"}, wait="0").status_code == 202
    refused = run(api, "w", wait="0")
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 60
    assert "2 runs a minute" in refused.json()["error"]
    assert AuditEvent.objects.filter(action__startswith="api_").count() == 2  # the refused one started nothing
    # Another token of the same user has its own count.
    assert run(Api(client, token_for(user, "other")), "w", wait="0").status_code == 202


# --- Cancel -------------------------------------------------------------------------

def test_cancel_stops_a_running_workflow_run(api):
    make_workflow("slow", ("first", "import time\ntime.sleep(60)\nreturn 1"), ("second", "return 2"))
    started = run(api, "slow", wait="0").json()
    wait_for(lambda: WorkflowRun.objects.get(pk=started["id"].split("-")[1]).status == "running",
             message="the run to start")
    response = api.post(f"/api/v1/runs/{started['id']}/cancel?wait=10")
    assert response.status_code == 200 and response.json()["status"] == "cancelled", response.json()
    event = AuditEvent.objects.get(action="api_cancel_run")
    assert event.object_repr == "slow" and event.detail["token"] == "script"


def test_cancel_stops_a_running_query(api, integration):
    started = query(api, integration, {"sql": "select pg_sleep(60)"}, wait="0").json()
    wait_for(lambda: QueryRun.objects.get(pk=started["id"].split("-")[1]).status == "running",
             message="the query to start")
    body = api.post(f"/api/v1/runs/{started['id']}/cancel?wait=10").json()
    assert body["status"] == "cancelled" and body["error"]["message"] == "Cancelled while running."


def test_a_runner_cannot_cancel_another_users_run(api, client, runner, integration):
    integration.share_with(runner)
    alices = query(api, integration, {"sql": "select 1"}).json()["id"]
    assert Api(client, token_for(runner)).post(f"/api/v1/runs/{alices}/cancel").status_code == 404
