"""A new user, in headless Chromium, sets up the MySQL and REST API kinds: typed credentials and
credentials fetched from (moto's) AWS Secrets Manager by a workflow, through a rotation, and bad input."""
from __future__ import annotations

import json
import secrets
from typing import Iterator

import pytest
from playwright.sync_api import Locator, Page, expect

from devtools.localapi import LocalApi
from integrations.models import Integration, QueryRun
from tests.e2e.steps import (connection_test_says_connected, fetch_with, finished_run, new_integration,
                             new_workflow)
from workflows.models import Workflow, WorkflowRun

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

TOKEN = "tok-" + secrets.token_hex(8)
ORDERS_SQL = "select item, qty from orders order by id"


def secret_reader(secret_id: str) -> str:
    """A step's code that returns the JSON held by ``secret_id`` in moto's Secrets Manager."""
    return (
        "import boto3, json\n"
        "client = boto3.session.Session().client(\n"
        '    service_name="secretsmanager", region_name="us-east-1", endpoint_url=Env.aws_endpoint_url,\n'
        "    aws_access_key_id=Env.aws_access_key_id, aws_secret_access_key=Env.aws_secret_access_key)\n"
        f'return json.loads(client.get_secret_value(SecretId="{secret_id}")["SecretString"])\n'
    )


# --- Fixtures: every secret put into moto is deleted, every password changed is restored ------------

@pytest.fixture
def mysql_secret(secretsmanager, mysql_target) -> Iterator[tuple[str, dict]]:
    """A moto secret with mysql_target's connection values; mysql_target's password restored after."""
    name = "kindsMysqlSecret"
    payload = {"host": mysql_target.host, "port": mysql_target.port, "dbname": mysql_target.database,
               "username": mysql_target.username, "password": mysql_target.password}
    secretsmanager.create_secret(Name=name, SecretString=json.dumps(payload))
    original = mysql_target.password
    try:
        yield name, payload
    finally:
        try:
            mysql_target.set_password(original)  # session-scoped: later tests log in with it
        finally:
            secretsmanager.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)


@pytest.fixture
def api() -> Iterator[LocalApi]:
    server = LocalApi(secret=TOKEN)
    yield server
    server.stop()


@pytest.fixture
def token_secret(secretsmanager) -> Iterator[str]:
    name = "kindsApiToken"
    secretsmanager.create_secret(Name=name, SecretString=json.dumps({"access_token": TOKEN}))
    yield name
    secretsmanager.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)


@pytest.fixture
def rest_integration(api, user) -> Integration:
    return Integration.objects.create_with_default(
        name="Orders API", kind="rest", created_by=user, statement_timeout_s=10,
        config={"base_url": api.url, "auth": "bearer", "headers": "", "verify_tls": True},
        secrets={"bearer_token": TOKEN})


# --- What a user does, step by step ------------------------------------------------------------

def save(page: Page, name: str) -> None:
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("was created")
    expect(page.get_by_role("heading", name=name)).to_be_visible()


def run_query(page: Page, sql: str) -> Locator:
    page.get_by_label("Query", exact=True).fill(sql)
    return finished_run(page, lambda: page.get_by_role("button", name="Run query").click())


def run_request(page: Page, method: str, path: str, body: str = "") -> Locator:
    page.get_by_label("Method").select_option(method)
    page.get_by_label("Path").fill(path)
    page.get_by_label("Body").fill(body)
    return finished_run(page, lambda: page.get_by_role("button", name="Run request").click())


def expect_the_orders(run: Locator, item_column: int) -> None:
    table = run.locator("table.result")
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(table.locator(f"tbody td:nth-child({item_column})")).to_have_text(["apple", "pear", "plum"])


def end_sessions_of(mysql_target) -> None:
    """The user's open sessions go, as after a server restart: pooled connections must log in again."""
    with mysql_target.admin() as conn, conn.cursor() as cursor:
        cursor.execute("select id from information_schema.processlist where user = %s", (mysql_target.username,))
        for (thread,) in cursor.fetchall():
            cursor.execute(f"KILL {thread}")


# --- MySQL --------------------------------------------------------------------------------------

def test_mysql_with_a_typed_password_connects_and_shows_the_orders(logged_in_page: Page, mysql_target):
    page = logged_in_page
    new_integration(page, "MySQL", "Shop")
    expect(page.get_by_label("Port")).to_have_value("3306")
    page.get_by_label("Host").fill(mysql_target.host)
    page.get_by_label("Port").fill(str(mysql_target.port))
    page.get_by_label("Database").fill(mysql_target.database)
    page.get_by_label("Username").fill(mysql_target.username)
    page.get_by_label("Password", exact=True).fill(mysql_target.password)
    connection_test_says_connected(page)
    save(page, "Shop")

    run = run_query(page, ORDERS_SQL)
    expect(run.locator("table.result thead th")).to_have_text(["#", "item", "qty"])
    expect_the_orders(run, item_column=2)
    expect(run.locator("table.result tbody td:nth-child(3)")).to_have_text(["3", "5", "8"])
    expect(run).to_contain_text("3 rows")
    expect(page.locator("#recent-runs")).to_contain_text(ORDERS_SQL)
    assert mysql_target.password not in page.content()


def test_mysql_with_fetched_credentials_keeps_answering_after_the_password_rotates(
        logged_in_page: Page, mysql_target, mysql_secret, secretsmanager):
    secret_name, payload = mysql_secret
    page = logged_in_page
    new_workflow(page, "getMysqlSecrets", "readSecret", secret_reader(secret_name))

    new_integration(page, "MySQL", "Shop (fetched)")
    preview = fetch_with(page, "getMysqlSecrets")
    expect(preview.locator("#workflow-response")).to_contain_text(f'"username": "{mysql_target.username}"')
    expect(preview.locator("#workflow-response")).to_contain_text('"password": "••••••••"')
    expect(preview).not_to_contain_text(mysql_target.password)
    page.get_by_label("Host").fill("{{getMysqlSecrets.response.host}}")
    page.get_by_label("Port").fill("{{getMysqlSecrets.response.port}}")
    page.get_by_label("Database").fill("{{getMysqlSecrets.response.dbname}}")
    page.get_by_label("Username").fill("{{getMysqlSecrets.response.username}}")
    page.get_by_label("Password", exact=True).fill("{{getMysqlSecrets.response.password}}")
    connection_test_says_connected(page)
    save(page, "Shop (fetched)")
    expect(page.locator(".subtitle")).to_contain_text("credentials fetched by getMysqlSecrets")
    expect_the_orders(run_query(page, ORDERS_SQL), item_column=2)

    # The secret rotates: new password on the server and in the secret; open sessions end.
    mysql_target.set_password("rotated-" + secrets.token_hex(8))
    secretsmanager.put_secret_value(SecretId=secret_name,
                                    SecretString=json.dumps({**payload, "password": mysql_target.password}))
    end_sessions_of(mysql_target)
    expect_the_orders(run_query(page, ORDERS_SQL), item_column=2)
    assert mysql_target.password not in page.content()
    workflow = Workflow.objects.get(name="getMysqlSecrets")
    # Once for the first query, once after the server refused the old password.
    assert WorkflowRun.objects.filter(workflow=workflow, trigger="credentials").count() == 2


# --- REST API -----------------------------------------------------------------------------------

def test_rest_api_with_a_bearer_token_shows_the_orders_and_never_the_token(logged_in_page: Page, api):
    page = logged_in_page
    new_integration(page, "REST API", "Orders API")
    page.get_by_label("Base URL").fill(api.url)
    page.get_by_label("Authentication").select_option(label="Bearer token")
    page.get_by_label("Bearer token").fill(TOKEN)
    connection_test_says_connected(page)
    save(page, "Orders API")

    run = run_request(page, "GET", "/orders")
    expect(run.locator(".http-status")).to_have_text("200 OK")
    expect(run.locator("table.result thead th")).to_have_text(["#", "id", "item", "qty", "price", "tags", "shipped"])
    expect_the_orders(run, item_column=3)
    assert api.seen[-1].headers["Authorization"] == f"Bearer {TOKEN}"  # the API got it...
    expect(page.locator("body")).not_to_contain_text(TOKEN)  # ...the page never shows it
    assert TOKEN not in page.content()


def test_rest_api_echoes_a_json_body_and_ctrl_enter_in_path_sends(logged_in_page: Page, rest_integration, api):
    page = logged_in_page
    page.goto(f"/integrations/{rest_integration.pk}/")
    run = run_request(page, "POST", "/echo", '{"qty": 2, "item": "fig"}')
    expect(run.locator(".http-status")).to_have_text("200 OK")
    body = run.locator("pre.response-body")
    expect(body).to_contain_text('"method": "POST"')
    expect(body).to_contain_text('"qty": 2')
    expect(body).to_contain_text('"item": "fig"')
    # The API echoed the Authorization header back: the page masks it there too.
    assert TOKEN not in page.content()

    page.get_by_label("Method").select_option("GET")
    page.get_by_label("Body").fill("")
    page.get_by_label("Path").fill("/orders/wrapped")
    run = finished_run(page, lambda: page.get_by_label("Path").press("Control+Enter"))
    expect(run.locator(".request-sent")).to_contain_text(f"GET {api.url}/orders/wrapped")
    expect_the_orders(run, item_column=3)
    assert QueryRun.objects.count() == 2  # one keystroke, one request


def test_rest_api_with_a_fetched_token_keeps_answering_after_the_token_rotates(
        logged_in_page: Page, api, token_secret, secretsmanager):
    page = logged_in_page
    new_workflow(page, "getApiToken", "readToken", secret_reader(token_secret))

    new_integration(page, "REST API", "Orders API (fetched)")
    preview = fetch_with(page, "getApiToken")
    expect(preview.locator("#workflow-response")).to_contain_text('"access_token": "••••••••"')
    page.get_by_label("Base URL").fill(api.url)
    page.get_by_label("Authentication").select_option(label="Bearer token")
    page.get_by_label("Bearer token").fill("{{getApiToken.response.access_token}}")
    connection_test_says_connected(page)
    save(page, "Orders API (fetched)")
    expect_the_orders(run_request(page, "GET", "/orders"), item_column=3)

    rotated = "tok-rotated-" + secrets.token_hex(8)
    api.rotate(rotated)
    secretsmanager.put_secret_value(SecretId=token_secret, SecretString=json.dumps({"access_token": rotated}))
    run = run_request(page, "GET", "/orders")
    expect(run.locator(".http-status")).to_have_text("200 OK")
    expect_the_orders(run, item_column=3)
    assert api.seen[-1].headers["Authorization"] == f"Bearer {rotated}"
    content = page.content()
    assert TOKEN not in content and rotated not in content
    workflow = Workflow.objects.get(name="getApiToken")
    # Once for the first request, once after the API answered 401 to the old token.
    assert WorkflowRun.objects.filter(workflow=workflow, trigger="credentials").count() == 2


# --- Bad input ----------------------------------------------------------------------------------

def test_a_body_that_is_not_json_is_refused_and_nothing_is_sent(logged_in_page: Page, rest_integration, api):
    page = logged_in_page
    page.goto(f"/integrations/{rest_integration.pk}/")
    page.get_by_label("Method").select_option("POST")
    page.get_by_label("Path").fill("/echo")
    page.get_by_label("Body").fill('{"qty": 2,}')
    page.get_by_role("button", name="Run request").click()
    expect(page.locator("#query-run [role=alert]")).to_contain_text("The body is not valid JSON")
    assert not QueryRun.objects.exists() and not api.seen

    # The page still works: the fixed body goes out.
    page.get_by_label("Body").fill('{"qty": 2}')
    run = finished_run(page, lambda: page.get_by_role("button", name="Run request").click())
    expect(run.locator("pre.response-body")).to_contain_text('"qty": 2')
    assert QueryRun.objects.count() == 1


def test_a_port_out_of_range_is_shown_beside_the_field_and_nothing_is_saved(logged_in_page: Page, mysql_target):
    page = logged_in_page
    new_integration(page, "MySQL", "Shop")
    page.get_by_label("Host").fill(mysql_target.host)
    page.get_by_label("Port").fill("99999")
    page.get_by_label("Database").fill(mysql_target.database)
    page.get_by_label("Username").fill(mysql_target.username)
    page.get_by_label("Password", exact=True).fill(mysql_target.password)

    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#test-connection-result")).to_contain_text("Fix these fields first")
    expect(page.locator("#test-connection-result")).to_contain_text("Port: Enter a port between 1 and 65535.")

    page.get_by_role("button", name="Save").click()
    expect(page.locator("#field-port .errorlist")).to_have_text("Enter a port between 1 and 65535.")
    expect(page.locator("#kind-fields legend")).to_have_text("MySQL connection")
    expect(page.get_by_label("Host")).to_have_value(mysql_target.host)
    expect(page.get_by_label("Password", exact=True)).to_have_value("")  # a password is never sent back
    assert not Integration.objects.exists()
