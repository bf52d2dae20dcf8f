"""The rough edges a new user hit (issue 13), each seen in headless Chromium: where Test connection
answers, the no-worker banner, an expired session, the credentials preview after a failed Save,
the step editor's tools, narrow windows and dark mode, and Older runs.

Screenshots of every page type, light and dark, 1280 and 390 px wide, go to /tmp/rough-*.png.
"""
from __future__ import annotations

import os
import subprocess
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import Page, expect

from integrations.models import Configuration, QueryRun
from runs.models import WorkerHeartbeat
from tests.conftest import ROOT, USER_PASSWORD, Worker, die_with_the_suite, stop_worker, wait_for
from tests.e2e import FINAL
from workflows.models import Step, Workflow, WorkflowRun

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
with_worker = pytest.mark.usefixtures("celery_worker")

SCREENSHOTS = os.environ.get("ROUGH_SCREENSHOTS", "/tmp")


def boxes_intersect(a: dict, b: dict) -> bool:
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


def page_scroll_width(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def too_wide(page: Page, width: int) -> list[str]:
    """The outermost elements that reach past ``width`` (for the failure message)."""
    return page.evaluate("""(width) => {
        const out = [];
        for (const el of document.body.querySelectorAll('*')) {
            const r = el.getBoundingClientRect();
            if (r.right > width + 0.5 && !(el.parentElement && out.includes(el.parentElement))) {
                let inScroller = false;
                for (let p = el.parentElement; p; p = p.parentElement) {
                    const o = getComputedStyle(p).overflowX;
                    if (o === 'auto' || o === 'scroll' || o === 'hidden') { inScroller = true; break; }
                }
                if (!inScroller) out.push(el);
            }
        }
        return out.slice(0, 5).map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
            (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '') +
            ' ' + Math.round(el.getBoundingClientRect().right));
    }""", width)


# --- 1. Test connection answers beside its button ------------------------------------

@with_worker
@pytest.mark.parametrize("form", ["integration", "configuration"])
def test_test_connection_answers_beside_the_button_in_view_and_announced(logged_in_page: Page, integration,
                                                                       target_db, form):
    page = logged_in_page
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(f"/integrations/{integration.pk}/edit/" if form == "integration"
              else f"/integrations/{integration.pk}/configurations/new/")
    if form == "configuration":
        page.get_by_label("Staging").check()
        page.get_by_label("Host").fill(target_db.host)
        page.get_by_label("Port").fill(str(target_db.port))
        page.get_by_label("Database").fill(target_db.database)
        page.get_by_label("Username").fill(target_db.username)
        page.get_by_label("Password", exact=True).fill(target_db.password)
    button = page.get_by_role("button", name="Test connection")
    button.click()
    outcome = page.locator("#test-connection-result [data-status]")
    expect(outcome).to_have_attribute("data-status", FINAL, timeout=30_000)
    expect(outcome).to_contain_text("Connected")

    # In view without scrolling, and right by the button (not at the end of a long form).
    answer = outcome.bounding_box()
    assert 0 <= answer["y"] and answer["y"] + answer["height"] <= 720, answer
    near = button.bounding_box()
    assert abs(answer["y"] - (near["y"] + near["height"])) < 80, (answer, near)
    # Announced: the answer is inside a polite live region that was on the page before it came.
    region = page.locator("[role=status][aria-live=polite]:has(#test-connection-result)")
    expect(region).to_have_count(1)
    page.screenshot(path=f"{SCREENSHOTS}/rough-test-connection-{form}.png")


# --- 2. No worker: a banner, and queued runs say so ----------------------------------

@pytest.fixture
def no_worker(request):
    """No live worker: the session's worker is stopped cleanly, which removes its heartbeat, and started
    again afterwards with the same command and environment, for the tests that follow."""
    session_worker: Worker = request.getfixturevalue("celery_worker")
    process = session_worker.process
    environ = dict(item.split("=", 1) for item in
                   open(f"/proc/{process.pid}/environ").read().split("\0") if "=" in item)
    stop_worker(session_worker)
    WorkerHeartbeat.objects.all().delete()
    yield
    ready_before = session_worker.log().count(" ready.")
    with open(session_worker.log_path, "ab") as log:
        session_worker.process = subprocess.Popen(
            process.args, cwd=ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=die_with_the_suite)
    wait_for(lambda: session_worker.log().count(" ready.") > ready_before, timeout=60,
             message="the session's worker to start again")


def test_without_a_worker_pages_that_run_things_say_what_to_start(no_worker, logged_in_page: Page, integration):
    page = logged_in_page
    workflow = Workflow.objects.create(name="hello")
    Step.objects.create(workflow=workflow, position=0, name="greet", code="return 1", timeout_s=30)
    # A worker that died a minute ago counts for nothing.
    long_ago = timezone.now() - timedelta(minutes=1)
    WorkerHeartbeat.objects.create(hostname="celery@gone", pid=1, every_profile=True, last_seen=long_ago,
                                   expires_at=long_ago + timedelta(seconds=30))
    for url in (f"/integrations/{integration.pk}/", f"/integrations/{integration.pk}/edit/",
                f"/integrations/{integration.pk}/configurations/new/", "/integrations/new/",
                f"/workflows/{workflow.pk}/"):
        page.goto(url)
        banner = page.locator("#no-worker")
        expect(banner).to_contain_text("No worker is running")
        expect(banner).to_contain_text("make run")
        expect(banner).to_contain_text(".venv/bin/python -m celery -A credtool worker")
    page.screenshot(path=f"{SCREENSHOTS}/rough-no-worker-banner.png")
    # Pages that run nothing stay quiet.
    page.goto("/integrations/")
    expect(page.locator("#no-worker")).to_have_count(0)

    # A queued run says so too.
    page.goto(f"/workflows/{workflow.pk}/")
    page.get_by_role("button", name="Run workflow").click()
    run = page.locator("#workflow-run")
    expect(run).to_have_attribute("data-status", "queued")
    expect(run.locator(".unserved")).to_contain_text("No worker is running")

    # A worker's fresh heartbeat and the banner is gone.
    now = timezone.now()
    WorkerHeartbeat.objects.create(hostname="celery@here", pid=2, every_profile=True, last_seen=now,
                                   expires_at=now + timedelta(seconds=30))
    page.goto(f"/integrations/{integration.pk}/")
    expect(page.locator("h1")).to_be_visible()
    expect(page.locator("#no-worker")).to_have_count(0)


# --- 3. An expired session on an htmx request -----------------------------------------

def test_an_expired_session_on_an_htmx_request_goes_to_login_and_back(logged_in_page: Page, integration):
    page = logged_in_page
    page.goto(f"/integrations/{integration.pk}/edit/")
    expect(page.get_by_role("button", name="Test connection")).to_be_visible()
    context = page.context
    kept = [c for c in context.cookies() if c["name"] != "sessionid"]
    assert len(kept) < len(context.cookies())
    context.clear_cookies()
    context.add_cookies(kept)

    page.get_by_role("button", name="Test connection").click()
    page.wait_for_url("**/accounts/login/**")
    expect(page.locator("#request-error")).to_have_count(0)
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(USER_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"**/integrations/{integration.pk}/edit/")
    expect(page.get_by_role("button", name="Test connection")).to_be_visible()


# --- 4. After a failed Save, the credentials preview shows nothing stale ----------------

@with_worker
def test_after_a_failed_save_the_credentials_preview_is_not_stale(logged_in_page: Page, integration):
    page = logged_in_page
    workflow = Workflow.objects.create(name="getHost")
    Step.objects.create(workflow=workflow, position=0, name="get", code='return {"host": "db-one.internal"}',
                        timeout_s=30)
    # Stored as fetching with it: the form's preview starts from the workflow's last run.
    Configuration.objects.filter(integration=integration, is_default=True).update(
        fetch_credentials=True, credentials_workflow=workflow)
    page.goto(f"/integrations/{integration.pk}/edit/")
    page.get_by_label("Fetch credentials dynamically").check()
    page.get_by_label("Workflow", exact=True).select_option(label="getHost")
    page.get_by_label("Host").fill("{{getHost.response.host}}")
    page.get_by_role("button", name="Run workflow").click()
    preview = page.locator("#credentials-preview")
    expect(preview.locator("[data-status]")).to_have_attribute("data-status", "succeeded", timeout=30_000)
    expect(preview.locator("table.resolved")).to_contain_text("db-one.internal")

    # The step now answers another host; the user changes the binding and saves with an error.
    Step.objects.filter(workflow=workflow).update(code='return {"host": "db-two.internal"}')
    page.get_by_label("Host").fill("{{getHost.response.hostname}}")
    page.get_by_label("Name", exact=True).fill("")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".errorlist").first).to_be_visible()
    page.screenshot(path=f"{SCREENSHOTS}/rough-failed-save-preview.png", full_page=True)
    # Nothing from the earlier preview: what shows (if anything) is about the fields as posted.
    expect(preview).not_to_contain_text("db-one.internal")
    if preview.locator("table.resolved").count():
        expect(preview.locator("table.resolved")).to_contain_text("{{getHost.response.hostname}}")
        expect(preview.locator("table.resolved")).to_contain_text("no key 'hostname'")


# --- 5. The step editor's tools and the audit log ----------------------------------------

@pytest.mark.parametrize("width", [1280, 800, 390])
def test_step_tools_never_overlap_the_step_name(logged_in_page: Page, width):
    page = logged_in_page
    page.set_viewport_size({"width": width, "height": 900})
    page.goto("/workflows/new/")
    page.get_by_label("Step name").fill("a_rather_long_step_name_that_fills_the_field")
    page.get_by_role("button", name="Add step").click()
    expect(page.get_by_label("Step name")).to_have_count(2)
    for i in range(2):
        name = page.get_by_label("Step name").nth(i).bounding_box()
        for label in (f"Move step {i + 1} up", f"Move step {i + 1} down", f"Remove step {i + 1}"):
            tool = page.get_by_role("button", name=label).bounding_box()
            assert not boxes_intersect(tool, name), (label, tool, name)
    assert page_scroll_width(page) <= width, too_wide(page, width)
    page.screenshot(path=f"{SCREENSHOTS}/rough-step-tools-{width}.png")


def test_the_audit_log_fits_a_1280_window(logged_in_page: Page, user, integration):
    user.groups.add(Group.objects.get(name="Admin"))
    from audit.models import AuditEvent

    long_sql = "select " + ", ".join(f"column_number_{i}" for i in range(60)) + " from a_table_with_a_long_name"
    for i in range(30):
        AuditEvent.objects.create(actor_name="alice", action="run_query", object_type="integration",
                                  object_repr="Target database with a long name " * 2,
                                  detail={"run": i, "sql": long_sql, "profile": "production",
                                          "configuration": "Default"}, ip="2001:db8:85a3::8a2e:370:7334")
    page = logged_in_page
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/audit/?action=run_query")
    expect(page.locator("table.list tbody tr")).to_have_count(30)
    assert page_scroll_width(page) <= 1280, too_wide(page, 1280)
    page.screenshot(path=f"{SCREENSHOTS}/rough-audit-1280.png")


# --- 6. 390 px wide and dark mode, every page type --------------------------------------

def seeded_pages(user, integration) -> list[tuple[str, str]]:
    """Every page type, with content: (short name, URL)."""
    user.groups.add(Group.objects.get(name="Admin"))
    workflow = Workflow.objects.create(name="getSecrets", description="Reads postgresSecrets")
    Step.objects.create(workflow=workflow, position=0, name="getSecret",
                        code='import boto3\nreturn {"host": "db.internal", "password": "x"}', timeout_s=30)
    now = timezone.now()
    wrun = WorkflowRun.objects.create(workflow=workflow, user=user, status="succeeded", started_at=now,
                                      finished_at=now, duration_ms=42.0,
                                      output={"host": "db.internal", "password": "••••••••"})
    WorkflowRun.objects.create(workflow=workflow, user=user, status="failed", finished_at=now,
                               error="RuntimeError: secret not found " * 4)
    columns = ["id", "name", "email", "created_at", "balance", "a_very_long_column_name_indeed"]
    rows = [[i, f"Customer {i}", f"customer{i}@example.com", "2026-12-05 10:00:00+00", f"{i * 10}.50",
             "x" * 60] for i in range(12)]
    qrun = QueryRun.objects.create(
        integration=integration, user=user, status="succeeded", sql="select * from customers",
        started_at=now, finished_at=now, duration_ms=3.2, row_count=12,
        results=[{"statement": "select * from customers", "columns": columns, "rows": rows, "row_count": 12,
                  "truncated": False, "status": "SELECT 12"}])
    QueryRun.objects.create(integration=integration, user=user, status="failed", sql="selec 1",
                            error_stage="query", error='syntax error at or near "selec"', finished_at=now)
    return [
        ("integrations", "/integrations/"),
        ("integration-new", "/integrations/new/"),
        ("integration", f"/integrations/{integration.pk}/"),
        ("query-run", f"/integrations/{integration.pk}/runs/{qrun.pk}/"),
        ("integration-edit", f"/integrations/{integration.pk}/edit/"),
        ("configuration", f"/integrations/{integration.pk}/configurations/new/"),
        ("workflows", "/workflows/"),
        ("workflow-new", "/workflows/new/"),
        ("workflow", f"/workflows/{workflow.pk}/"),
        ("workflow-run", f"/workflows/{workflow.pk}/runs/{wrun.pk}/"),
        ("workflow-edit", f"/workflows/{workflow.pk}/edit/"),
        ("profiles", "/profiles/"),
        ("audit", "/audit/"),
        ("api-tokens", "/api-tokens/"),
    ]


def test_every_page_fits_390_px_and_follows_dark_mode(logged_in_page: Page, browser, live_server, user,
                                                      integration):
    page = logged_in_page
    pages = seeded_pages(user, integration)
    wide: list[str] = []
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for width in (1280, 390):
            page.set_viewport_size({"width": width, "height": 900})
            for name, url in pages:
                page.goto(url)
                expect(page.locator("h1").first).to_be_visible()
                if page_scroll_width(page) > width:
                    wide.append(f"{name} {scheme} {width}: {page_scroll_width(page)} {too_wide(page, width)}")
                page.screenshot(path=f"{SCREENSHOTS}/rough-{name}-{scheme}-{width}.png", full_page=True)
            if width == 390:  # the header stays usable: every link of it can be reached and clicked
                for link in ("Integrations", "Workflows", "Profiles", "Audit log", "API tokens"):
                    box = page.locator("header").get_by_role("link", name=link, exact=True).bounding_box()
                    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (link, box)
                log_out = page.locator("header").get_by_role("button", name="Log out").bounding_box()
                assert log_out and log_out["x"] + log_out["width"] <= 390, log_out
    assert not wide, wide

    # Dark mode changes the colours themselves, and text keeps its contrast.
    def colours() -> dict:
        return page.evaluate("""() => {
            const s = getComputedStyle(document.documentElement), i = document.querySelector('input[type=text], select');
            return {bg: s.backgroundColor, ink: s.color, input: i ? getComputedStyle(i).backgroundColor : null};
        }""")

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"/integrations/{integration.pk}/edit/")
    page.emulate_media(color_scheme="light")
    light = colours()
    page.emulate_media(color_scheme="dark")
    dark = colours()
    assert dark["bg"] != light["bg"] and dark["input"] != light["input"], (light, dark)
    assert luminance(dark["bg"]) < 0.1 < luminance(dark["ink"]), dark

    anonymous = browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 800},
                                    color_scheme="dark")
    login = anonymous.new_page()
    login.goto("/accounts/login/")
    assert page_scroll_width(login) <= 390
    login.screenshot(path=f"{SCREENSHOTS}/rough-login-dark-390.png")
    anonymous.close()


def luminance(css: str) -> float:
    r, g, b = (int(v) / 255 for v in css[css.index("(") + 1:css.index(")")].split(",")[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


# --- 7. Older runs ---------------------------------------------------------------------

def numbered_runs(make, count: int) -> None:
    """``count`` runs numbered 1 (oldest) to ``count`` (newest), a second apart."""
    start = timezone.now() - timedelta(hours=1)
    for n in range(1, count + 1):
        run = make(n)
        type(run).objects.filter(pk=run.pk).update(created_at=start + timedelta(seconds=n))


@pytest.mark.parametrize("where", ["integration", "workflow"])
@pytest.mark.parametrize("javascript", [True, False])
def test_older_runs_pages_past_the_newest_20(logged_in_page: Page, browser, live_server, user, integration,
                                            where, javascript):
    if where == "integration":
        numbered_runs(lambda n: QueryRun.objects.create(integration=integration, user=user, status="succeeded",
                                                        sql=f"select {n} as run_number"), 45)
        url, cell = f"/integrations/{integration.pk}/", lambda n: f"select {n} as run_number"
    else:
        workflow = Workflow.objects.create(name="numbered")
        numbered_runs(lambda n: WorkflowRun.objects.create(workflow=workflow, user=user, status="failed",
                                                           error=f"run number {n}."), 45)
        url, cell = f"/workflows/{workflow.pk}/", lambda n: f"run number {n}."
    page = logged_in_page
    if not javascript:
        context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
        context.add_cookies(logged_in_page.context.cookies())
        page = context.new_page()
    page.goto(url)
    rows = page.locator("#recent-runs tbody tr")

    def shown() -> list[str]:
        return [t.strip() for t in rows.locator("td:last-child").all_inner_texts()]

    expect(rows).to_have_count(20)
    assert shown() == [cell(n) for n in range(45, 25, -1)]
    page.get_by_role("link", name="Older runs").click()
    expect(rows.first.locator("td:last-child")).to_have_text(cell(25))
    assert shown() == [cell(n) for n in range(25, 5, -1)]  # runs 21st to 40th newest
    if javascript:
        assert page.url.rstrip("/").endswith(url.rstrip("/")), page.url  # htmx swapped the list alone
    page.get_by_role("link", name="Older runs").click()
    expect(rows.first.locator("td:last-child")).to_have_text(cell(5))
    assert shown() == [cell(n) for n in range(5, 0, -1)]
    expect(page.get_by_role("link", name="Older runs")).to_have_count(0)
    page.get_by_role("link", name="Newest runs").click()
    expect(rows.first.locator("td:last-child")).to_have_text(cell(45))
    if not javascript:
        page.context.close()
