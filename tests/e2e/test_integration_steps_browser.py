"""A Builder makes a workflow with a parameter, an Integration step and a Python step that reads its
output, in headless Chromium; runs it with the default and with an injection-shaped value (no rows, the
table intact); and cancels a long one. A real worker runs the steps against a real PostgreSQL."""
from __future__ import annotations

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e import FINAL
from tests.e2e.steps import htmx_settled
from workflows.models import Step, Workflow

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def run_workflow(page: Page, status: str = "succeeded") -> Locator:
    """Press Run workflow and wait for THIS run to end (the previous result may already say done)."""
    page.locator("#workflow-run").evaluate("el => el.setAttribute('data-stale', '')")
    page.get_by_role("button", name="Run workflow").click()
    run = page.locator("#workflow-run:not([data-stale])")
    expect(run).to_have_attribute("data-status", FINAL, timeout=40_000)
    expect(run).to_have_attribute("data-status", status)
    return run


def test_a_parameter_is_a_bound_value_of_an_integration_step_read_by_a_python_step(logged_in_page: Page,
                                                                                  integration, target_db):
    page = logged_in_page
    page.goto("/workflows/new/")
    page.get_by_label("Name", exact=True).fill("balance")
    page.get_by_role("button", name="Add parameter").click()
    page.get_by_label("Parameter name").fill("who")
    page.get_by_label("Default value").fill("Ada Lovelace")

    first = page.get_by_role("group", name="Step 1")
    first.get_by_label("Step name").fill("customer")
    first.get_by_label("Step type").select_option(label="Integration")
    htmx_settled(page)
    first.get_by_label("Integration", exact=True).select_option(label="Target (PostgreSQL)")
    htmx_settled(page)
    first.get_by_label("Query", exact=True).fill("select name, balance from customers where name = {{params.who}}")

    page.get_by_role("button", name="Add step").click()
    second = page.get_by_role("group", name="Step 2")
    second.get_by_label("Step name").fill("summary")
    expect(second.get_by_label("Step type")).to_have_value("python")
    second.get_by_label("Code").fill("rows = customer.output['rows']\n"
                                     "return f\"{len(rows)} row(s)\" + (f\": {rows[0]['balance']}\" if rows else '')")
    # What was typed in step 1 survived adding step 2.
    expect(first.get_by_label("Query", exact=True)).to_have_text(
        "select name, balance from customers where name = {{params.who}}")
    page.get_by_role("button", name="Save").first.click()
    expect(page.locator(".messages")).to_contain_text("was created")
    expect(page.locator(".step-list")).to_contain_text("Integration Target")

    expect(page.get_by_label("who", exact=True)).to_have_value("Ada Lovelace")
    expect(run_workflow(page).locator("#workflow-response")).to_have_text('"1 row(s): 120.50"')

    page.get_by_label("who", exact=True).fill("x' or '1'='1")
    expect(run_workflow(page).locator("#workflow-response")).to_have_text('"0 row(s)"')
    with target_db.admin() as conn:
        assert conn.execute("select count(*) from customers").fetchone()[0] == 3


def test_a_long_integration_step_is_cancelled(logged_in_page: Page, integration):
    workflow = Workflow.objects.create(name="slow")
    Step.objects.create(workflow=workflow, position=0, name="sleep", step_type="integration", integration=integration,
                        code="select pg_sleep(60)", timeout_s=120)
    Step.objects.create(workflow=workflow, position=1, name="after", code="return 'never'")
    page = logged_in_page
    page.goto(f"/workflows/{workflow.pk}/")
    page.get_by_role("button", name="Run workflow").click()
    run = page.locator("#workflow-run")
    expect(run).to_have_attribute("data-status", "running", timeout=30_000)
    page.get_by_role("button", name="Cancel").click()
    expect(run).to_have_attribute("data-status", "cancelled", timeout=5_000)
    expect(run).to_contain_text("Cancelled while running.")
    expect(run).not_to_contain_text("after")
