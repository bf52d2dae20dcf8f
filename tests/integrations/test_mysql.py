"""MySQL (MariaDB) integrations, run by a real worker against a real server."""
from __future__ import annotations

import json
import time

import pytest

from integrations.models import ConnectionCheck, Integration, QueryRun
from tests.conftest import result, wait_for, wait_for_final
from workflows.models import Step, Workflow, WorkflowRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def run(client, integration, sql, timeout=30) -> QueryRun:
    response = client.post(f"/integrations/{integration.pk}/query/", {"sql": sql}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return wait_for_final(QueryRun, QueryRun.objects.latest("pk").pk, timeout)


def check(client, **values) -> ConnectionCheck:
    data = {"kind": "mysql", "name": "", "statement_timeout_s": "30", **values}
    response = client.post("/integrations/test-connection/", data, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return wait_for_final(ConnectionCheck, ConnectionCheck.objects.latest("pk").pk, timeout=20)


def test_the_form_has_the_mysql_fields(logged_in_client):
    page = logged_in_client.get("/integrations/new/?kind=mysql").content.decode()
    for label in ("Kind", "Name", "Host", "Port", "Database", "Username", "Password", "SSL mode",
                  "Statement timeout (seconds)", "Read-only", "Fetch credentials dynamically"):
        assert f">{label}</label>" in page, label
    # Shared with is a grid of checkboxes (a user per row, a profile per column): its label names the table.
    assert 'id="shared-with-label">Shared with</span>' in page and 'aria-labelledby="shared-with-label"' in page
    assert 'value="3306"' in page and 'value="preferred" selected' in page
    assert "MySQL connection" in page


def test_test_connection_says_connected_and_a_wrong_password_shows_the_servers_words(logged_in_client, mysql_target):
    done = check(logged_in_client, **mysql_target.form_values())
    assert done.status == "succeeded" and done.message.startswith("Connected to MySQL"), done.message
    assert "MariaDB" in done.message and mysql_target.username in done.message
    wrong = check(logged_in_client, **mysql_target.form_values(password="not-it"))
    assert wrong.status == "failed"
    assert f"Access denied for user '{mysql_target.username}'@'127.0.0.1' (using password: YES)" in wrong.message
    assert "not-it" not in wrong.message


def test_results_every_statement_and_the_servers_own_text(logged_in_client, mysql_integration):
    finished = run(logged_in_client, mysql_integration,
                   "select item, qty, price, ordered, note, raw from orders order by id; select 1 + 1 as two; "
                   "update orders set qty = qty where qty > 4")
    assert finished.status == "succeeded", finished.error
    first = result(finished)
    assert first["columns"] == ["item", "qty", "price", "ordered", "note", "raw"]
    assert first["rows"][0] == ["apple", 3, "1.50", "2024-01-02", None, "\\x00ff"]
    assert result(finished, 2)["rows"] == [[2]]
    assert result(finished, 3)["status"] == "OK, 0 rows affected"
    html = logged_in_client.get(f"/integrations/{mysql_integration.pk}/runs/{finished.pk}/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html


def test_a_failing_statement_is_named_and_the_server_speaks(logged_in_client, mysql_integration):
    finished = run(logged_in_client, mysql_integration, "select 1; select * from no_such_table")
    assert finished.status == "failed" and finished.error_stage == "query"
    assert finished.error.startswith("statement 2 of 2 (select * from no_such_table): ")
    assert "no_such_table' doesn't exist" in finished.error and len(finished.results) == 1


def test_a_huge_result_is_cut_at_the_cap_by_the_server(logged_in_client, mysql_integration):
    finished = run(logged_in_client, mysql_integration,
                   "select seq from seq_1_to_2000000; show session status like 'Rows_sent'")
    assert finished.status == "succeeded" and result(finished)["row_count"] == 1000 and finished.truncated
    sent = int(result(finished, 2)["rows"][0][1])
    assert sent < 1010  # the server sent one row past the cap, not two million


def test_the_statement_timeout_stops_a_long_query(logged_in_client, mysql_integration):
    mysql_integration.statement_timeout_s = 1
    mysql_integration.save()
    finished = run(logged_in_client, mysql_integration, "select sleep(20)")
    assert finished.status == "failed" and "ran longer than its timeout (1 s)" in finished.error


def test_a_query_that_switches_off_the_timeout_is_still_stopped_by_the_worker(logged_in_client, mysql_integration):
    mysql_integration.statement_timeout_s = 1
    mysql_integration.save()
    finished = run(logged_in_client, mysql_integration, "set session max_statement_time = 0; select sleep(20)")
    assert finished.status == "failed" and "ran longer than its timeout (1 s)" in finished.error


def test_cancel_kills_the_query_on_the_server(logged_in_client, mysql_integration, mysql_target):
    logged_in_client.post(f"/integrations/{mysql_integration.pk}/query/", {"sql": "select sleep(60)"})
    query = QueryRun.objects.latest("pk")

    def sleeping() -> int:
        with mysql_target.admin() as conn, conn.cursor() as cursor:
            cursor.execute("select count(*) from information_schema.processlist where info like 'select sleep(60)%'")
            return cursor.fetchone()[0]

    wait_for(sleeping, message="the query to run on the server")
    logged_in_client.post(f"/integrations/{mysql_integration.pk}/runs/{query.pk}/cancel/", HTTP_HX_REQUEST="true")
    assert wait_for_final(QueryRun, query.pk, timeout=10).status == "cancelled"
    assert sleeping() == 0


@pytest.mark.parametrize("sql", [
    "start transaction; insert into orders (item) values ('x')",
    "commit; insert into orders (item) values ('x')",
    "set session transaction read write; insert into orders (item) values ('x')",
    "set @@session.tx_read_only = 0; insert into orders (item) values ('x')",
    "/*!50000 set session transaction read write */; insert into orders (item) values ('x')",
    "/*!50000 commit */; insert into orders (item) values ('x')",
])
def test_read_only_statements_that_would_undo_it_are_refused(logged_in_client, mysql_integration, mysql_target, sql):
    mysql_integration.read_only = True
    mysql_integration.save()
    finished = run(logged_in_client, mysql_integration, sql)
    assert finished.status == "failed" and "read-only integration" in finished.error
    assert orders(mysql_target) == 3


@pytest.mark.parametrize("sql", ["insert into orders (item) values ('x')", "create table sneaky (i int)",
                                 "delete from orders",
                                 # Dynamic SQL the text check cannot see: the statement's own read-only
                                 # transaction refuses the write all the same.
                                 "prepare s from 'set session tx_read_only = 0'; execute s; "
                                 "insert into orders (item) values ('x')"])
def test_read_only_writes_are_refused_by_the_server(logged_in_client, mysql_integration, mysql_target, sql):
    mysql_integration.read_only = True
    mysql_integration.save()
    finished = run(logged_in_client, mysql_integration, sql)
    assert finished.status == "failed" and "READ ONLY transaction" in finished.error
    assert orders(mysql_target) == 3


def orders(mysql_target) -> int:
    with mysql_target.admin() as conn, conn.cursor() as cursor:
        cursor.execute("select count(*) from orders")
        return cursor.fetchone()[0]


def test_a_session_setting_does_not_reach_the_next_query(logged_in_client, mysql_integration):
    first = run(logged_in_client, mysql_integration,
                "set @secret_sauce = 42; set session sql_mode = 'ANSI'; select connection_id()")
    second = run(logged_in_client, mysql_integration, "select @secret_sauce, @@session.sql_mode, connection_id()")
    assert result(first, 3)["rows"][0][0] == result(second)["rows"][0][2]  # the same pooled connection...
    assert result(second)["rows"][0][0] is None and "ANSI" not in result(second)["rows"][0][1]  # ...reset


def test_csv_of_a_mysql_result(logged_in_client, mysql_integration):
    finished = run(logged_in_client, mysql_integration, "select item, qty from orders order by id")
    body = b"".join(logged_in_client.get(
        f"/integrations/{mysql_integration.pk}/runs/{finished.pk}/csv/").streaming_content).decode("utf-8-sig")
    assert body.splitlines() == ["item,qty", "apple,3", "pear,5", "plum,8"]


GET_SECRETS = """\
import boto3, json
client = boto3.session.Session().client(
    service_name="secretsmanager", region_name="us-east-1", endpoint_url=Env.aws_endpoint_url,
    aws_access_key_id=Env.aws_access_key_id, aws_secret_access_key=Env.aws_secret_access_key)
return json.loads(client.get_secret_value(SecretId=params.secret_id)["SecretString"])
"""


@pytest.fixture
def fetched(secretsmanager, mysql_target, user):
    name = "mysqlSecrets"
    payload = {"host": mysql_target.host, "port": mysql_target.port, "dbname": mysql_target.database,
               "username": mysql_target.username, "password": mysql_target.password}
    secretsmanager.create_secret(Name=name, SecretString=json.dumps(payload))
    workflow = Workflow.objects.create(name="getMySQLSecrets", parameters=[{"name": "secret_id", "default": name}])
    Step.objects.create(workflow=workflow, position=0, name="fetch", code=GET_SECRETS, timeout_s=20)
    integration = Integration.objects.create_with_default(
        name="Shop (fetched)", kind="mysql", created_by=user, fetch_credentials=True, credentials_workflow=workflow,
        config={"host": "{{getMySQLSecrets.response.host}}", "port": "{{getMySQLSecrets.response.port}}",
                "database": "{{getMySQLSecrets.response.dbname}}",
                "username": "{{getMySQLSecrets.response.username}}",
                "password": "{{getMySQLSecrets.response.password}}", "ssl_mode": "preferred"})
    original = mysql_target.password
    yield integration, workflow, name, payload
    mysql_target.set_password(original)
    secretsmanager.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)


def test_fetched_credentials_and_a_rotation_the_next_query_survives(logged_in_client, fetched, mysql_target,
                                                                    secretsmanager):
    integration, workflow, name, payload = fetched
    assert run(logged_in_client, integration, "select current_user()").status == "succeeded"
    mysql_target.set_password("rotated-" + str(time.time_ns()))
    secretsmanager.put_secret_value(SecretId=name, SecretString=json.dumps({**payload,
                                                                            "password": mysql_target.password}))
    with mysql_target.admin() as conn, conn.cursor() as cursor:  # old sessions go, as after a restart
        cursor.execute("select id from information_schema.processlist where user = %s", (mysql_target.username,))
        for (thread,) in cursor.fetchall():
            cursor.execute(f"KILL {thread}")
    again = run(logged_in_client, integration, "select current_user()")
    assert again.status == "succeeded", again.error_text
    assert WorkflowRun.objects.filter(workflow=workflow, trigger="credentials").count() == 2
