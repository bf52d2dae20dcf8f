"""Queries and connection checks executed by a real Celery worker against a real PostgreSQL."""
from __future__ import annotations

import re
import socket
import threading
import time

import pytest

from integrations.models import ConnectionCheck, Integration, QueryRun
from tests.conftest import result, wait_for, wait_for_final

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def run(client, integration, sql, timeout=30) -> QueryRun:
    response = client.post(f"/integrations/{integration.pk}/query/", {"sql": sql}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    run = QueryRun.objects.latest("pk")
    return wait_for_final(QueryRun, run.pk, timeout)


def test_query_result_is_a_table_with_column_names_and_row_count(logged_in_client, integration):
    finished = run(logged_in_client, integration, "select id, name, email from customers order by id")
    assert finished.status == "succeeded"
    assert result(finished)["columns"] == ["id", "name", "email"]
    assert finished.row_count == 3 and not finished.truncated
    page = logged_in_client.get(f"/integrations/{integration.pk}/runs/{finished.pk}/", HTTP_HX_REQUEST="true")
    html = page.content.decode()
    assert "<th>name</th>" in html and "Ada Lovelace" in html and "3 rows" in html
    assert page["HX-Trigger"] == "run-finished"


def test_a_quick_query_answers_run_with_its_result(logged_in_client, integration):
    """No page polls for a quick query: the POST waits for it (up to CONSOLE_WAIT_S)."""
    response = logged_in_client.post(f"/integrations/{integration.pk}/query/",
                                     {"sql": "select name from customers order by id"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert 'data-status="succeeded"' in html and "Ada Lovelace" in html and "hx-trigger" not in html
    assert response["HX-Trigger"] == "run-finished"


def test_a_longer_query_answers_running_and_the_page_polls(logged_in_client, integration, settings):
    settings.CONSOLE_WAIT_S = 0.2
    response = logged_in_client.post(f"/integrations/{integration.pk}/query/", {"sql": "select pg_sleep(1.5)"},
                                     HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert re.search(r'data-status="(queued|running)"', html) and 'hx-trigger="load delay:400ms"' in html
    assert "HX-Trigger" not in response
    assert wait_for_final(QueryRun, QueryRun.objects.latest("pk").pk, 30).status == "succeeded"


def test_run_does_not_wait_when_every_waiting_slot_is_taken(logged_in_client, integration, monkeypatch):
    """Waiting Runs never hold every thread of the web server: without a free slot, Run answers at once."""
    from runs import waiting

    monkeypatch.setattr(waiting, "_slots", threading.BoundedSemaphore(1))
    waiting._slots.acquire()
    response = logged_in_client.post(f"/integrations/{integration.pk}/query/", {"sql": "select 1"},
                                     HTTP_HX_REQUEST="true")
    assert 'data-status="queued"' in response.content.decode()
    assert wait_for_final(QueryRun, QueryRun.objects.latest("pk").pk, 30).status == "succeeded"


def test_an_edit_between_two_runs_is_what_the_next_run_uses(logged_in_client, integration, target_db):
    """The worker keeps what runs use (integration, configuration) between runs: a save() of either,
    whatever saved it, is what the very next run sees."""
    timeout = "select current_setting('statement_timeout')"
    assert result(run(logged_in_client, integration, timeout))["rows"] == [["30s"]]
    integration.statement_timeout_s = 7
    integration.save()
    assert result(run(logged_in_client, integration, timeout))["rows"] == [["7s"]]
    configuration = integration.default_configuration
    configuration.set_secrets({"password": "not-" + target_db.password})
    configuration.save()  # not through the form: no new revision, a new updated_at
    refused = run(logged_in_client, integration, "select 1")
    assert refused.status == "failed" and "password" in refused.error


def test_a_run_is_executed_once_and_never_after_it_was_cancelled(integration, target_db):
    """The worker's claim is conditional: a redelivered message, or one for a run cancelled while
    queued, runs nothing."""
    from integrations import execution

    with target_db.admin() as conn:
        conn.execute("DROP TABLE IF EXISTS claims; CREATE TABLE claims (n int); ALTER TABLE claims OWNER TO app_user")
    configuration = integration.default_configuration
    done = QueryRun.objects.create(integration=integration, configuration=configuration,
                                   sql="insert into claims values (1)")
    execution.execute(done.pk)
    execution.execute(done.pk)  # delivered twice
    cancelled = QueryRun.objects.create(integration=integration, configuration=configuration, status="cancelled",
                                        sql="insert into claims values (2)")
    execution.execute(cancelled.pk)
    with target_db.admin() as conn:
        assert conn.execute("select n from claims order by n").fetchall() == [(1,)]
    assert QueryRun.objects.get(pk=cancelled.pk).status == "cancelled"


def test_cells_are_html_escaped(logged_in_client, integration):
    finished = run(logged_in_client, integration, "select notes from customers where id = 2")
    html = logged_in_client.get(f"/integrations/{integration.pk}/runs/{finished.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_sql_error_shows_the_database_message(logged_in_client, integration):
    finished = run(logged_in_client, integration, "selec 1")
    assert finished.status == "failed" and finished.error_stage == "query"
    assert 'syntax error at or near "selec"' in finished.error
    html = logged_in_client.get(f"/integrations/{integration.pk}/runs/{finished.pk}/").content.decode()
    assert "syntax error at or near &quot;selec&quot;" in html


def test_statement_timeout_stops_a_long_query(logged_in_client, integration):
    integration.statement_timeout_s = 1
    integration.save()
    started = time.monotonic()
    finished = run(logged_in_client, integration, "select pg_sleep(20)")
    assert time.monotonic() - started < 10
    assert finished.status == "failed"
    assert "statement timeout" in finished.error and "1 s" in finished.error


def test_huge_result_is_cut_at_the_row_cap(logged_in_client, integration):
    finished = run(logged_in_client, integration, "select g, md5(g::text) from generate_series(1, 200000) g")
    assert finished.status == "succeeded"
    assert finished.row_count == 1000 and finished.truncated and len(result(finished)["rows"]) == 1000
    html = logged_in_client.get(f"/integrations/{integration.pk}/runs/{finished.pk}/").content.decode()
    assert "The result was cut at 1000 rows" in html


def test_statements_without_rows_report_what_they_did(logged_in_client, integration):
    finished = run(logged_in_client, integration, "update customers set balance = balance where id < 3")
    assert finished.status == "succeeded" and finished.status_message == "UPDATE 2"


def test_cancel_stops_a_running_query_on_the_server(logged_in_client, integration, target_db):
    logged_in_client.post(f"/integrations/{integration.pk}/query/", {"sql": "select pg_sleep(60)"})
    query = QueryRun.objects.latest("pk")
    wait_for(lambda: QueryRun.objects.get(pk=query.pk).status == "running", message="the run to start")

    def sleeping_backends() -> int:
        with target_db.admin() as conn:
            return conn.execute(
                "select count(*) from pg_stat_activity where application_name = 'credtool' and state = 'active'"
            ).fetchone()[0]

    wait_for(sleeping_backends, message="the query to reach the server")
    response = logged_in_client.post(
        f"/integrations/{integration.pk}/runs/{query.pk}/cancel/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    finished = wait_for_final(QueryRun, query.pk, timeout=10)
    assert finished.status == "cancelled"
    assert sleeping_backends() == 0


def test_every_run_is_recorded_and_listed(logged_in_client, integration, user):
    finished = run(logged_in_client, integration, "select 42 as answer")
    assert finished.user == user and finished.sql == "select 42 as answer"
    assert finished.duration_ms is not None and finished.started_at and finished.finished_at
    html = logged_in_client.get(f"/integrations/{integration.pk}/").content.decode()
    assert "Recent runs" in html and "select 42 as answer" in html


def test_csv_download_has_header_and_rows(logged_in_client, integration):
    finished = run(logged_in_client, integration, "select id, notes from customers order by id")
    response = logged_in_client.get(f"/integrations/{integration.pk}/runs/{finished.pk}/csv/")
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    lines = body.splitlines()
    assert response["Content-Type"].startswith("text/csv")
    assert lines[0] == "id,notes" and lines[1] == "1," and lines[3] == '3,"tab\tand ""quotes"""'


def test_wrong_password_shows_the_servers_message(logged_in_client, integration):
    default = integration.default_configuration
    default.set_secrets({"password": "not-the-password"})
    default.save()
    finished = run(logged_in_client, integration, "select 1")
    assert finished.status == "failed" and finished.error_stage == "connection"
    assert 'password authentication failed for user "app_user"' in finished.error
    assert "not-the-password" not in finished.error


def check(client, **values) -> ConnectionCheck:
    data = {"kind": "postgres", "name": "", "statement_timeout_s": "30", **values}
    response = client.post("/integrations/test-connection/", data, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return wait_for_final(ConnectionCheck, ConnectionCheck.objects.latest("pk").pk, timeout=20)


def test_test_connection_checks_unsaved_values(logged_in_client, target_db):
    done = check(logged_in_client, **target_db.form_values())
    assert done.status == "succeeded" and done.message.startswith("Connected to PostgreSQL")
    assert done.secrets_encrypted == ""  # the typed password is not kept
    assert Integration.objects.count() == 0


def test_test_connection_reports_a_wrong_password(logged_in_client, target_db):
    done = check(logged_in_client, **target_db.form_values(password="wrong"))
    assert done.status == "failed"
    assert 'password authentication failed for user "app_user"' in done.message


def test_test_connection_with_blank_password_uses_the_stored_one(logged_in_client, integration, target_db):
    done = check(logged_in_client, integration=str(integration.pk), **target_db.form_values(password=""))
    assert done.status == "succeeded"


def test_unreachable_host_fails_within_seconds(logged_in_client, target_db):
    # A listener that accepts and never answers: libpq waits for the server's reply.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    accepted = []
    threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
    started = time.monotonic()
    done = check(logged_in_client, **target_db.form_values(port=silent.getsockname()[1]))
    assert time.monotonic() - started < 15
    assert done.status == "failed" and "timeout" in done.message.lower()
    silent.close()


def test_closed_port_fails_with_connection_refused(logged_in_client, target_db):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    done = check(logged_in_client, **target_db.form_values(port=port))
    assert done.status == "failed" and "refused" in done.message.lower()


def test_nulls_bytes_unicode_and_json_cells_are_shown(logged_in_client, integration):
    finished = run(logged_in_client, integration,
                   "select null as nothing, '\\x00ff'::bytea as raw, 'Zoë 🐘 日本' as text, "
                   "'{\"a\": [1, 2]}'::jsonb as doc, 1.50::numeric as money, now() > '2000-01-01' as later")
    assert finished.status == "succeeded"
    assert result(finished)["rows"] == [[None, "\\x00ff", "Zoë 🐘 日本", '{"a": [1, 2]}', "1.50", True]]
    html = logged_in_client.get(f"/integrations/{integration.pk}/runs/{finished.pk}/").content.decode()
    assert '<td class="null">NULL</td>' in html and "Zoë 🐘 日本" in html


def test_very_wide_rows_and_a_million_row_result(logged_in_client, integration):
    columns = ", ".join(f"g + {i} as c{i}" for i in range(300))
    wide = run(logged_in_client, integration, f"select {columns} from generate_series(1, 5) g")
    assert wide.status == "succeeded" and len(result(wide)["columns"]) == 300 and wide.row_count == 5
    million = run(logged_in_client, integration, "select g from generate_series(1, 1000000) g", timeout=60)
    assert million.status == "succeeded" and million.truncated and million.row_count == 1000


def test_huge_sql_text_is_refused_with_a_message(logged_in_client, integration):
    response = logged_in_client.post(f"/integrations/{integration.pk}/query/", {"sql": "select 1 " + "-" * 1_100_000},
                                     HTTP_HX_REQUEST="true")
    assert "The query is longer than" in response.content.decode()
    assert not QueryRun.objects.exists()


def test_queries_reuse_a_pooled_connection(logged_in_client, integration):
    first = run(logged_in_client, integration, "select pg_backend_pid()")
    second = run(logged_in_client, integration, "select pg_backend_pid()")
    assert result(first)["rows"] == result(second)["rows"]  # the same server session: no login per query
