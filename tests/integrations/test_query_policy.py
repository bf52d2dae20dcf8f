"""What a query may do, enforced by the database and the worker, whatever the SQL says.

Read-only integrations stay read-only through COMMIT, ROLLBACK and SET; nothing a
query sets survives into the next query on the same pooled connection; every
statement's result is kept; PostgreSQL's own values never fail a query.
"""
from __future__ import annotations

import pytest

from integrations.models import Integration, QueryRun
from tests.conftest import make_user, result, wait_for_final

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture
def read_only(integration):
    integration.read_only = True
    integration.save()
    return integration


@pytest.fixture
def scratch(target_db):
    """A table for writes, dropped afterwards, and a check that a table does not exist."""
    with target_db.admin() as conn:
        conn.execute("DROP TABLE IF EXISTS ro_bypass; DROP TABLE IF EXISTS orders;"
                     "CREATE TABLE orders (item text, qty int); ALTER TABLE orders OWNER TO app_user")
    yield
    with target_db.admin() as conn:
        conn.execute("DROP TABLE IF EXISTS ro_bypass; DROP TABLE IF EXISTS orders")


def table_exists(target_db, name: str) -> bool:
    with target_db.admin() as conn:
        return conn.execute("select to_regclass(%s) is not null", (name,)).fetchone()[0]


def order_count(target_db) -> int:
    with target_db.admin() as conn:
        return conn.execute("select count(*) from orders").fetchone()[0]


def run(client, integration, sql, timeout=30) -> QueryRun:
    response = client.post(f"/integrations/{integration.pk}/query/", {"sql": sql}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return wait_for_final(QueryRun, QueryRun.objects.latest("pk").pk, timeout)


# --- Read-only ---------------------------------------------------------------------------

@pytest.mark.parametrize("sql", [
    "commit; create table ro_bypass(i int)",
    "rollback; create table ro_bypass(i int)",
    "end; create table ro_bypass(i int)",
    "begin read write; create table ro_bypass(i int)",
    "set default_transaction_read_only = off; commit; create table ro_bypass(i int)",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; commit; create table ro_bypass(i int)",
    "reset all; commit; create table ro_bypass(i int)",
    "select set_config('default_transaction_read_only', 'off', false); commit; create table ro_bypass(i int)",
    "select set_config('default_' || 'transaction_read_only', 'off', false)",
    "set transaction read write; create table ro_bypass(i int)",
    "discard all; create table ro_bypass(i int)",
])
def test_transaction_control_and_read_only_settings_are_refused_with_a_message(
        logged_in_client, read_only, target_db, scratch, sql):
    finished = run(logged_in_client, read_only, sql)
    assert finished.status == "failed" and finished.error_stage == "query"
    assert "read-only integration" in finished.error
    assert not table_exists(target_db, "ro_bypass")


@pytest.mark.parametrize("sql", [
    # Not refused by name: the database itself refuses, inside the read-only transaction.
    "do $$ begin perform set_config('transaction_read_only', 'off', false); end $$",
    "do $$ begin execute 'create table ro_bypass(i int)'; end $$",
    "insert into orders values ('x', 1)",
    "create table ro_bypass(i int)",
    "savepoint s; insert into orders values ('x', 1)",
])
def test_the_database_refuses_writes_however_they_are_dressed(logged_in_client, read_only, target_db, scratch, sql):
    finished = run(logged_in_client, read_only, sql)
    assert finished.status == "failed"
    assert "read-only transaction" in finished.error or "read-write mode must be set before" in finished.error
    assert not table_exists(target_db, "ro_bypass") and order_count(target_db) == 0


def test_rollback_then_insert_writes_nothing(logged_in_client, read_only, target_db, scratch):
    finished = run(logged_in_client, read_only, "rollback; insert into orders values ('x', 1)")
    assert finished.status == "failed" and order_count(target_db) == 0


def test_a_read_only_session_stays_read_only_on_the_next_query(logged_in_client, read_only, target_db, scratch):
    # A DO block may change the session's default for later transactions; the reset undoes it.
    run(logged_in_client, read_only, "do $$ begin perform set_config('default_transaction_read_only', 'off', false);"
                                     " end $$")
    again = run(logged_in_client, read_only, "show default_transaction_read_only")
    assert result(again)["rows"] == [["on"]]
    assert run(logged_in_client, read_only, "insert into orders values ('x', 1)").status == "failed"
    assert order_count(target_db) == 0


def test_a_read_only_integration_may_set_harmless_settings_for_its_query(logged_in_client, read_only):
    finished = run(logged_in_client, read_only, "set search_path = pg_catalog; show search_path; select 1 as one")
    assert finished.status == "succeeded"
    assert [r["status"] for r in finished.results] == ["SET", "SHOW", "SELECT 1"]
    assert result(finished, 2)["rows"] == [["pg_catalog"]]


def test_writable_integrations_keep_psqls_transaction_control(logged_in_client, integration, target_db, scratch):
    finished = run(logged_in_client, integration,
                   "begin; insert into orders values ('a', 1); commit; insert into orders values ('b', 2)")
    assert finished.status == "succeeded" and order_count(target_db) == 2
    assert run(logged_in_client, integration, "vacuum orders").status == "succeeded"  # needs no transaction


# --- Session reset --------------------------------------------------------------------

def test_a_setting_does_not_reach_the_next_query_even_another_users(
        logged_in_client, client, integration, django_user_model):
    first = run(logged_in_client, integration, "set search_path = pg_catalog; select pg_backend_pid() as pid")
    assert first.status == "succeeded"
    bob = make_user(django_user_model, "bob", "Builder")
    client.force_login(bob)
    second = run(client, integration, "select current_setting('search_path') as path, pg_backend_pid() as pid")
    assert result(second)["rows"][0][1] == result(first, 2)["rows"][0][0]  # the same pooled session...
    assert result(second)["rows"][0][0] == '"$user", public'  # ...reset before reuse


def test_set_config_cannot_switch_off_the_timeout_for_the_next_query(logged_in_client, integration):
    integration.statement_timeout_s = 1
    integration.save()
    assert run(logged_in_client, integration, "select set_config('statement_timeout', '0', false)").status == "succeeded"
    after = run(logged_in_client, integration, "select pg_sleep(5)")
    assert after.status == "failed" and "statement timeout" in after.error


def test_a_query_that_switches_off_the_timeout_is_still_stopped_by_the_worker(logged_in_client, integration):
    integration.statement_timeout_s = 1
    integration.save()
    finished = run(logged_in_client, integration, "set statement_timeout = 0; select pg_sleep(20)", timeout=15)
    assert finished.status == "failed" and "ran longer than its timeout (1 s)" in finished.error


def test_temporary_tables_and_prepared_statements_do_not_survive(logged_in_client, integration):
    assert run(logged_in_client, integration, "create temp table mine(i int); prepare p as select 1").status == "succeeded"
    after = run(logged_in_client, integration, "select count(*) from pg_prepared_statements")
    assert result(after)["rows"] == [[0]]
    assert "does not exist" in run(logged_in_client, integration, "select * from mine").error


# --- Multiple statements ---------------------------------------------------------------------

def test_every_statement_has_its_own_result_in_order(logged_in_client, integration):
    finished = run(logged_in_client, integration, "select 1 as a; select 2 as b;\n-- done\n")
    assert finished.status == "succeeded"
    assert [(r["columns"], r["rows"]) for r in finished.results] == [(["a"], [[1]]), (["b"], [[2]])]
    html = logged_in_client.get(f"/integrations/{integration.pk}/runs/{finished.pk}/").content.decode()
    assert "<th>a</th>" in html and "<th>b</th>" in html and "2 statements" in html


def test_a_status_and_rows_both_show(logged_in_client, integration):
    finished = run(logged_in_client, integration, "set statement_timeout = 0; select 1 as one")
    assert [r["status"] for r in finished.results] == ["SET", "SELECT 1"]
    assert result(finished, 2)["rows"] == [[1]]


def test_a_failing_statement_stops_the_rest_and_says_which(logged_in_client, integration, target_db, scratch):
    finished = run(logged_in_client, integration,
                   "insert into orders values ('a', 1); select * from no_such_table; select 3 as c")
    assert finished.status == "failed"
    assert finished.error.startswith("statement 2 of 3 (select * from no_such_table): ")
    assert 'relation "no_such_table" does not exist' in finished.error
    assert len(finished.results) == 1 and finished.results[0]["status"] == "INSERT 0 1"
    assert order_count(target_db) == 0  # one transaction: rolled back together


def test_each_result_has_its_own_csv(logged_in_client, integration):
    finished = run(logged_in_client, integration, "select 1 as a; select 'x' as b, 2 as c")
    second = logged_in_client.get(f"/integrations/{integration.pk}/runs/{finished.pk}/csv/2/")
    assert b"".join(second.streaming_content).decode("utf-8-sig").splitlines() == ["b,c", "x,2"]
    assert logged_in_client.get(f"/integrations/{integration.pk}/runs/{finished.pk}/csv/3/").status_code == 404


def test_the_row_cap_holds_across_statements(logged_in_client, integration, settings):
    finished = run(logged_in_client, integration, "; ".join(["select g from generate_series(1, 1500) g"] * 6))
    kept = [len(r["rows"]) for r in finished.results]
    assert kept == [1000, 1000, 1000, 1000, 1000, 0] and all(r["truncated"] for r in finished.results)


# --- Values -----------------------------------------------------------------------------

def test_postgresqls_own_values_are_shown_as_psql_prints_them(logged_in_client, integration):
    finished = run(logged_in_client, integration, """
        select 'infinity'::timestamptz as a, '-infinity'::date as b, '0044-03-15 BC'::date as c,
               'NaN'::float8 as d, 'NaN'::numeric as e, interval '1 day 2 hours' as f, int4range(1, 5) as g,
               array[1, 2, 3] as h, 12.5::money as i, '\\x00ff'::bytea as j, true as k, 42::int8 as l,
               1.5::float4 as m, null::int as n, array[true, false] as o""")
    assert finished.status == "succeeded", finished.error
    assert result(finished)["rows"] == [[
        "infinity", "-infinity", "0044-03-15 BC", "NaN", "NaN", "1 day 02:00:00", "[1,5)", "{1,2,3}", "$12.50",
        "\\x00ff", True, 42, "1.5", None, "{t,f}"]]
    html = logged_in_client.get(f"/integrations/{integration.pk}/runs/{finished.pk}/").content.decode()
    assert "<td>true</td>" in html and "True" not in html and "<td>1 day 02:00:00</td>" in html
    csv_text = b"".join(logged_in_client.get(
        f"/integrations/{integration.pk}/runs/{finished.pk}/csv/").streaming_content).decode("utf-8-sig")
    assert csv_text.splitlines()[1] == "infinity,'-infinity,0044-03-15 BC,NaN,NaN,1 day 02:00:00,\"[1,5)\",\"{1,2,3}\",$12.50,\\x00ff,true,42,1.5,,\"{t,f}\""


def test_csv_cells_that_would_run_as_formulas_are_made_text(logged_in_client, integration):
    finished = run(logged_in_client, integration,
                   "select '=1+1' as a, '+cmd' as b, '-2+3' as c, '@SUM(A1)' as d, -5 as e, '-1.5'::numeric as f")
    body = b"".join(logged_in_client.get(
        f"/integrations/{integration.pk}/runs/{finished.pk}/csv/").streaming_content).decode("utf-8-sig")
    assert body.splitlines()[1] == "'=1+1,'+cmd,'-2+3,'@SUM(A1),-5,-1.5"


def test_text_the_parser_cannot_read_is_the_servers_to_report(logged_in_client, integration, read_only):
    default = integration.default_configuration
    writable = Integration.objects.create_with_default(name="W", kind="postgres", config=default.config,
                                                       secrets=default.secrets())
    failed = run(logged_in_client, writable, "selec 1")
    assert failed.status == "failed" and 'syntax error at or near "selec"' in failed.error
    refused = run(logged_in_client, read_only, "selec 1")
    assert refused.status == "failed" and "read-only integration" in refused.error
