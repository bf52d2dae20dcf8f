"""Download CSV / JSON of a whole result: a real worker runs the statement again into a file."""
from __future__ import annotations

import csv
import io
import json
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from audit.models import AuditEvent
from exports.models import ExportRun
from integrations.models import QueryRun
from tests.conftest import make_user, wait_for, wait_for_final

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

FIVE_THOUSAND = "select g, g % 2 = 0 as even, case when g % 3 = 0 then null else 'x' || g end as label " \
                "from generate_series(1, 5000) g"


def query(client, integration, sql: str) -> QueryRun:
    response = client.post(f"/integrations/{integration.pk}/query/", {"sql": sql}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return wait_for_final(QueryRun, QueryRun.objects.latest("pk").pk)


def export(client, run: QueryRun, fmt: str = "csv", number: int = 1, timeout: float = 60) -> ExportRun:
    response = client.post(f"/exports/runs/{run.pk}/results/{number}/export/{fmt}/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200, response.content[:500]
    return wait_for_final(ExportRun, ExportRun.objects.latest("pk").pk, timeout)


def downloaded(client, export_run: ExportRun) -> str:
    response = client.get(f"/exports/{export_run.pk}/download/")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    return b"".join(response.streaming_content).decode("utf-8")


def test_csv_export_of_a_5000_row_result_has_every_row_as_the_page_shows_it(logged_in_client, integration):
    run = query(logged_in_client, integration, FIVE_THOUSAND)
    assert run.status == "succeeded" and run.truncated and run.row_count == 1000
    page = logged_in_client.get(f"/integrations/{integration.pk}/runs/{run.pk}/", HTTP_HX_REQUEST="true")
    assert "Download CSV" in page.content.decode() and "Download JSON" in page.content.decode()
    done = export(logged_in_client, run)
    assert done.status == "succeeded", done.error
    assert done.rows_written == 5000 and not done.truncated and done.profile_id == run.profile_id
    body = downloaded(logged_in_client, done)
    assert body.startswith("\ufeff")  # as the console's CSV: spreadsheet programs read it as UTF-8
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert rows[0] == ["g", "even", "label"] and len(rows) == 5001
    # Cells read as on the page (booleans true/false, NULL empty), the same as the stored rows' CSV.
    assert rows[1:4] == [["1", "false", "x1"], ["2", "true", "x2"], ["3", "false", ""]]
    stored = b"".join(logged_in_client.get(
        f"/integrations/{integration.pk}/runs/{run.pk}/csv/").streaming_content).decode("utf-8")
    assert body.splitlines()[:1001] == stored.splitlines()
    event = AuditEvent.objects.get(action="export")
    assert event.detail["run"] == run.pk and event.detail["format"] == "csv" and "generate_series" in event.detail["sql"]
    html = logged_in_client.get(f"/exports/{done.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "Download CSV (5,000 rows," in html and 'hx-trigger' not in html


def test_export_files_are_private_and_named_by_id(logged_in_client, integration):
    done = export(logged_in_client, query(logged_in_client, integration, FIVE_THOUSAND))
    path = Path(done.file_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.name.startswith(f"export-{done.pk}-") and done.size_bytes == path.stat().st_size
    response = logged_in_client.get(f"/exports/{done.pk}/download/")
    assert f'filename="target-run-{done.query_run_id}.csv"' in response["Content-Disposition"]


def test_json_export_has_one_object_a_row(logged_in_client, integration):
    done = export(logged_in_client, query(logged_in_client, integration, FIVE_THOUSAND), "json")
    assert done.status == "succeeded", done.error
    objects = json.loads(downloaded(logged_in_client, done))
    assert len(objects) == 5000
    assert objects[:3] == [{"g": 1, "even": False, "label": "x1"}, {"g": 2, "even": True, "label": "x2"},
                           {"g": 3, "even": False, "label": None}]


def test_the_export_cap_cuts_the_file_and_says_so(logged_in_client, integration, settings):
    settings.EXPORT_MAX_ROWS = 1234  # kept on the export when it is asked for: the worker reads it there
    done = export(logged_in_client, query(logged_in_client, integration, FIVE_THOUSAND))
    assert done.max_rows == 1234 and done.rows_written == 1234 and done.truncated
    assert len(downloaded(logged_in_client, done).splitlines()) == 1235
    html = logged_in_client.get(f"/exports/{done.pk}/").content.decode()
    assert "Cut at 1,234 rows" in html


def test_mysql_export_streams_every_row(logged_in_client, mysql_integration):
    run = query(logged_in_client, mysql_integration, "select seq, concat('item ', seq) as item from seq_1_to_5000")
    assert run.status == "succeeded" and run.truncated, run.error
    done = export(logged_in_client, run)
    assert done.status == "succeeded", done.error
    rows = list(csv.reader(io.StringIO(downloaded(logged_in_client, done).lstrip("\ufeff"))))
    assert rows[0] == ["seq", "item"] and len(rows) == 5001 and rows[-1] == ["5000", "item 5000"]
    objects = json.loads(downloaded(logged_in_client, export(logged_in_client, run, "json")))
    assert len(objects) == 5000 and objects[0] == {"seq": 1, "item": "item 1"}


def test_mysql_export_cap_applies_on_a_connection_of_its_own(logged_in_client, mysql_integration, settings):
    settings.EXPORT_MAX_ROWS = 2500
    run = query(logged_in_client, mysql_integration, "select seq from seq_1_to_5000")
    done = export(logged_in_client, run)
    assert done.rows_written == 2500 and done.truncated
    # The queries' own cap is untouched: the export's sql_select_limit never reached a pooled session.
    again = query(logged_in_client, mysql_integration, "select seq from seq_1_to_5000")
    assert again.row_count == 1000 and again.truncated


def test_a_run_of_several_statements_exports_statement_n_alone(logged_in_client, integration):
    run = query(logged_in_client, integration, "select 1 as one; select g from generate_series(1, 3000) g")
    assert run.status == "succeeded" and len(run.results) == 2
    done = export(logged_in_client, run, number=2)
    assert done.status == "succeeded" and done.rows_written == 3000
    response = logged_in_client.get(f"/exports/{done.pk}/download/")
    assert f'filename="target-run-{run.pk}-2.csv"' in response["Content-Disposition"]


def test_a_statement_that_is_not_a_select_is_refused(logged_in_client, integration, target_db):
    run = query(logged_in_client, integration, "update customers set balance = balance returning id")
    assert run.status == "succeeded" and run.results[0]["columns"] == ["id"]
    done = export(logged_in_client, run)
    assert done.status == "failed" and done.file_path == ""
    assert "only a SELECT" in done.error and "runs it again" in done.error


def test_a_failed_export_shows_the_databases_message_without_the_password(logged_in_client, integration, target_db):
    run = query(logged_in_client, integration, "select g from generate_series(1, 2000) g")
    default = integration.default_configuration
    default.config = {**default.config, "database": "no_such_database"}
    default.save()
    done = export(logged_in_client, run)
    assert done.status == "failed" and done.error_stage == "connection"
    assert "no_such_database" in done.error and target_db.password not in done.error
    html = logged_in_client.get(f"/exports/{done.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "Connection failed" in html


def test_cancel_stops_an_export_on_the_server_and_removes_its_file(logged_in_client, integration, target_db):
    run = query(logged_in_client, integration, "select g from generate_series(1, 2000) g")
    # The same run exported with a slow statement: a QueryRun row, as the page would have recorded it.
    slow = QueryRun.objects.create(
        integration=integration, configuration=run.configuration, profile=run.profile, user=run.user,
        sql="select g, pg_sleep(0.002) from generate_series(1, 100000) g", status="succeeded",
        results=[{"statement": "…", "columns": ["g", "pg_sleep"], "rows": [], "row_count": 0, "truncated": True,
                  "status": "SELECT"}])
    logged_in_client.post(f"/exports/runs/{slow.pk}/results/1/export/csv/")
    started = ExportRun.objects.latest("pk")
    wait_for(lambda: ExportRun.objects.get(pk=started.pk).rows_written > 0, timeout=30,
             message="the export to write rows")
    running = ExportRun.objects.get(pk=started.pk)
    assert running.status == "running" and Path(running.file_path).exists()
    html = logged_in_client.get(f"/exports/{started.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "Exporting…" in html and "Cancel" in html and 'hx-trigger="load delay:500ms"' in html
    response = logged_in_client.post(f"/exports/{started.pk}/cancel/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    done = wait_for_final(ExportRun, started.pk, timeout=10)
    assert done.status == "cancelled" and done.file_path == "" and not Path(running.file_path).exists()

    def active() -> int:
        with target_db.admin() as conn:
            return conn.execute("select count(*) from pg_stat_activity where application_name = 'credtool' "
                                "and state = 'active'").fetchone()[0]

    assert active() == 0


def test_an_expired_export_is_purged_and_its_link_says_so(logged_in_client, integration):
    done = export(logged_in_client, query(logged_in_client, integration, FIVE_THOUSAND))
    path = Path(done.file_path)
    assert path.exists() and done.expires_at > timezone.now() + timedelta(hours=23)
    ExportRun.objects.filter(pk=done.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    out = io.StringIO()
    call_command("purge_exports", stdout=out)
    assert "Deleted 1 expired export file" in out.getvalue()
    assert not path.exists() and ExportRun.objects.get(pk=done.pk).file_path == ""
    response = logged_in_client.get(f"/exports/{done.pk}/download/")
    assert response.status_code == 410 and "This export expired" in response.content.decode()
    # A week later the row goes too.
    ExportRun.objects.filter(pk=done.pk).update(expires_at=timezone.now() - timedelta(days=8))
    call_command("purge_exports", stdout=io.StringIO())
    assert not ExportRun.objects.filter(pk=done.pk).exists()


def test_the_worker_sweeps_expired_files_when_it_starts_an_export(logged_in_client, integration):
    run = query(logged_in_client, integration, FIVE_THOUSAND)
    first = export(logged_in_client, run)
    ExportRun.objects.filter(pk=first.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    export(logged_in_client, run)
    assert not Path(first.file_path).exists() and ExportRun.objects.get(pk=first.pk).file_path == ""


def test_without_javascript_the_post_redirects_to_the_exports_page(logged_in_client, integration):
    run = query(logged_in_client, integration, FIVE_THOUSAND)
    response = logged_in_client.post(f"/exports/runs/{run.pk}/results/1/export/csv/")
    assert response.status_code == 302
    pk = ExportRun.objects.latest("pk").pk
    assert response["Location"] == f"/exports/{pk}/"
    wait_for_final(ExportRun, pk, 60)
    html = logged_in_client.get(response["Location"]).content.decode()
    assert "<html" in html.lower() and f"/exports/{pk}/download/" in html and "Download CSV (5,000 rows" in html


def test_a_runner_cannot_start_see_or_download_another_users_export(client, logged_in_client, integration,
                                                                    django_user_model, user):
    runner = make_user(django_user_model, "rob", "Runner")
    integration.share_with(runner)
    run = query(logged_in_client, integration, FIVE_THOUSAND)  # Alice's run
    done = export(logged_in_client, run)
    client.force_login(runner)
    assert client.post(f"/exports/runs/{run.pk}/results/1/export/csv/").status_code == 404
    assert client.get(f"/exports/{done.pk}/").status_code == 404
    assert client.get(f"/exports/{done.pk}/download/").status_code == 404
    assert client.post(f"/exports/{done.pk}/cancel/").status_code == 404
    assert ExportRun.objects.count() == 1


def test_a_result_with_all_its_rows_downloads_as_stored(logged_in_client, integration):
    run = query(logged_in_client, integration, "select id, name from customers order by id")
    html = logged_in_client.get(f"/integrations/{integration.pk}/runs/{run.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert f"/integrations/{integration.pk}/runs/{run.pk}/csv/" in html and "/export/" not in html
    response = logged_in_client.get(f"/exports/runs/{run.pk}/results/1/json/")
    assert response["Content-Disposition"] == f'attachment; filename="target-run-{run.pk}.json"'
    assert json.loads(response.content)[0] == {"id": 1, "name": "Ada Lovelace"}
