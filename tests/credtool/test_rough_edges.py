"""The server side of issue 13's rough edges: the htmx login redirect, the no-worker banner and its one
query, Older runs, the credentials preview after a failed Save, and the demo's login line."""
from __future__ import annotations

import inspect
import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrations.models import Integration, QueryRun
from runs import lifecycle, workers
from runs.models import WorkerHeartbeat
from workflows.models import Step, Workflow, WorkflowRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def workflow():
    workflow = Workflow.objects.create(name="getHost")
    Step.objects.create(workflow=workflow, position=0, name="get", code="return 1", timeout_s=30)
    return workflow


@pytest.fixture
def stored(user):
    """An integration with a stored password, no database behind it (these tests never connect)."""
    return Integration.objects.create_with_default(
        name="Shop", kind="postgres", created_by=user,
        config={"host": "db.internal", "port": 5432, "database": "shop", "username": "shop", "sslmode": "prefer"},
        secrets={"password": "s3cret"})


def beat(expires_in_s: float) -> None:
    now = timezone.now()
    WorkerHeartbeat.objects.create(hostname=f"celery@{expires_in_s}", pid=1, every_profile=True, last_seen=now,
                                   expires_at=now + timedelta(seconds=expires_in_s))


# --- An expired session on an htmx request ---------------------------------------------

def test_an_anonymous_htmx_post_is_sent_to_login_with_the_page_to_come_back_to(stored):
    client = Client(enforce_csrf_checks=True)  # as the browser: the CSRF check would answer 403 first
    response = client.post("/integrations/test-connection/", {"integration": stored.pk}, HTTP_HX_REQUEST="true",
                           HTTP_HX_CURRENT_URL=f"http://testserver/integrations/{stored.pk}/edit/?tab=1")
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/accounts/login/?next=/integrations/{stored.pk}/edit/%3Ftab%3D1"


def test_an_anonymous_htmx_get_goes_to_login_too_and_never_to_another_site(stored):
    response = Client().get(f"/integrations/{stored.pk}/", HTTP_HX_REQUEST="true",
                            HTTP_HX_CURRENT_URL="https://evil.example/phish")
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/accounts/login/?next=/integrations/{stored.pk}/"


def test_without_htmx_or_with_a_session_nothing_changes(logged_in_client, stored):
    assert Client().get(f"/integrations/{stored.pk}/")["Location"].startswith("/accounts/login/?next=")
    response = logged_in_client.get(f"/integrations/{stored.pk}/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "HX-Redirect" not in response
    # The login page itself is open to anonymous htmx requests.
    assert "HX-Redirect" not in Client().get("/accounts/login/", HTTP_HX_REQUEST="true")


# --- No worker is running ----------------------------------------------------------------

def test_pages_that_run_things_show_the_no_worker_banner_until_a_worker_beats(logged_in_client, stored, workflow):
    beat(-1)  # a worker whose heartbeat expired a second ago is gone
    for url in (f"/integrations/{stored.pk}/", f"/integrations/{stored.pk}/edit/", "/integrations/new/",
                f"/integrations/{stored.pk}/configurations/new/", f"/workflows/{workflow.pk}/"):
        html = logged_in_client.get(url).content.decode()
        assert 'id="no-worker"' in html and "No worker is running" in html, url
        assert "make run" in html and ".venv/bin/python -m celery -A credtool worker" in html, url
    for url in ("/integrations/", "/workflows/", f"/workflows/{workflow.pk}/edit/"):
        assert 'id="no-worker"' not in logged_in_client.get(url).content.decode(), url
    beat(30)
    assert 'id="no-worker"' not in logged_in_client.get(f"/integrations/{stored.pk}/").content.decode()


def test_the_banner_costs_one_query_and_other_pages_none(logged_in_client, stored):
    def heartbeat_queries(url: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            logged_in_client.get(url)
        return sum("runs_workerheartbeat" in q["sql"] for q in queries.captured_queries)

    assert heartbeat_queries(f"/integrations/{stored.pk}/") == 1
    assert heartbeat_queries("/integrations/") == 0


def test_a_queued_run_says_no_worker_is_running_when_none_is(workflow):
    queued = WorkflowRun.objects.create(workflow=workflow)
    assert workers.unserved_message(queued) == workers.NO_WORKER_MESSAGE
    assert "No worker is running" in workers.NO_WORKER_MESSAGE and "make run" in workers.NO_WORKER_MESSAGE
    beat(30)
    assert workers.unserved_message(queued) == ""


@pytest.mark.django_db(transaction=True)  # the request runs in a thread of its own
def test_without_a_worker_run_answers_queued_at_once_saying_so(logged_in_client, stored, settings, monkeypatch):
    """The console's Run waits for its query, but not for one no worker would pick up: a Run that
    waited its whole wait here (a minute) would leave the user looking at a spinner."""
    settings.CONSOLE_WAIT_S = 60
    # No worker: none beats, and none gets the message (a worker other tests started may still run).
    monkeypatch.setattr(workers, "live_coverage", lambda: workers.Coverage(False, frozenset(), 0))
    monkeypatch.setattr(lifecycle, "publish", lambda *args: None)
    answered: list = []
    thread = threading.Thread(target=lambda: answered.append(logged_in_client.post(
        f"/integrations/{stored.pk}/query/", {"sql": "select 1"}, HTTP_HX_REQUEST="true")), daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert answered, "Run waited for a query that no worker would run"
    html = answered[0].content.decode()
    assert 'data-status="queued"' in html and "No worker is running" in html


def test_a_queued_export_says_no_worker_is_running_when_none_is(logged_in_client, stored, user):
    from exports.models import ExportRun

    run = QueryRun.objects.create(integration=stored, configuration=stored.default_configuration, user=user,
                                  sql="select 1", status="succeeded")
    export = ExportRun.objects.create(query_run=run, format="csv", user=user, max_rows=10,
                                      expires_at=timezone.now() + timedelta(days=1))
    html = logged_in_client.get(f"/exports/{export.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "Export queued" in html and "No worker is running" in html
    beat(30)
    html = logged_in_client.get(f"/exports/{export.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "Export queued" in html and "No worker is running" not in html


# --- Older runs ----------------------------------------------------------------------------

def numbered(make, count: int) -> list[int]:
    """Runs numbered 1 (oldest) to ``count``; several share a creation time, as runs started together do."""
    start = timezone.now() - timedelta(hours=1)
    pks = []
    for n in range(1, count + 1):
        run = make(n)
        type(run).objects.filter(pk=run.pk).update(created_at=start + timedelta(seconds=n // 3))
        pks.append(run.pk)
    return pks


def shown_runs(html: str, marker: str) -> list[int]:
    return [int(n) for n in re.findall(">" + marker + r"(\d+)</td>", html)]


@pytest.mark.parametrize("where", ["integration", "workflow"])
def test_recent_runs_show_20_and_older_runs_pages_through_the_rest(logged_in_client, user, stored, workflow, where):
    if where == "integration":
        numbered(lambda n: QueryRun.objects.create(integration=stored, user=user, sql=f"select run{n}"), 45)
        url, marker = f"/integrations/{stored.pk}/", "select run"
    else:
        numbered(lambda n: WorkflowRun.objects.create(workflow=workflow, user=user, status="failed",
                                                      error=f"failure{n}"), 45)
        url, marker = f"/workflows/{workflow.pk}/", "failure"
    seen: list[int] = []
    page = logged_in_client.get(url)
    while True:
        html = page.content.decode()
        recent = html[html.index('id="recent-runs"'):]
        runs = shown_runs(recent, marker)
        assert len(runs) == (20 if len(seen) < 40 else 5)
        seen += runs
        if "Older runs" not in recent:
            break
        before = re.search(r'href="[^"]*\?before=(\d+)#recent-runs"', recent).group(1)
        assert f'hx-get="{url}?before={before}"' in recent  # and htmx swaps the list alone
        page = logged_in_client.get(f"{url}?before={before}")
        assert "Newest runs" in page.content.decode()
    assert seen == list(range(45, 0, -1))


def test_a_bad_before_shows_the_newest_runs(logged_in_client, user, stored):
    QueryRun.objects.create(integration=stored, user=user, sql="select run1")
    for before in ("x", "-1", "9" * 30):
        assert "select run1" in logged_in_client.get(f"/integrations/{stored.pk}/?before={before}").content.decode()


# --- The credentials preview after a failed Save -----------------------------------------

def test_a_failed_save_shows_no_stale_preview(logged_in_client, user, workflow):
    # The form opened showing the workflow's last run against the stored bindings.
    stored = Integration.objects.create_with_default(
        name="Shop", kind="postgres", created_by=user, fetch_credentials=True, credentials_workflow=workflow,
        config={"host": "{{getHost.response.host}}", "port": 5432, "database": "shop", "username": "shop",
                "sslmode": "prefer"}, secrets={"password": "s3cret"})
    WorkflowRun.objects.create(workflow=workflow, status="succeeded", output={"host": "db-one.internal"},
                               trigger="preview")
    opened = logged_in_client.get(f"/integrations/{stored.pk}/edit/").content.decode()
    assert "db-one.internal" in opened
    data = {"name": "", "fetch_credentials": "on", "credentials_workflow": workflow.pk, "credentials_cache_s": 300,
            "host": "{{getHost.response.hostname}}", "port": "5432", "database": "shop", "username": "shop",
            "password": "", "sslmode": "prefer", "statement_timeout_s": 30}
    html = logged_in_client.post(f"/integrations/{stored.pk}/edit/", data).content.decode()
    assert "This field is required" in html  # the Save failed
    preview = html[html.index('id="credentials-preview"'):]
    preview = preview[:preview.index("Cache credentials for")]  # the field after the preview
    assert "db-one.internal" not in preview


# --- The demo's login line ----------------------------------------------------------------

def test_the_demo_waits_for_a_ready_worker_before_its_login_line(monkeypatch, capsys):
    from devtools import demo

    naps: list[float] = []
    monkeypatch.setattr(demo.time, "sleep", naps.append)
    demo.wait_for_worker(timeout=0)  # no heartbeat: it gives up, saying so
    assert "The worker did not start" in capsys.readouterr().out
    beat(30)
    naps.clear()
    demo.wait_for_worker(timeout=0)
    assert capsys.readouterr().out == "" and naps == [1]
    # main() prints the login line only after that wait.
    source = inspect.getsource(demo.main)
    assert source.index("wait_for_worker()") < source.index("log in as")


def test_the_readme_says_which_port_the_demo_uses_and_how_to_change_it():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    demo_part = readme[readme.index("### The demo"):]
    assert "http://127.0.0.1:8000/" in demo_part[:400] and "make demo PORT=" in demo_part[:400]
