"""A Builder gives a workflow a parameter with **Add parameter** and runs it with the prefilled
default and with another value, in headless Chromium; a real worker runs the step."""
from __future__ import annotations

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e import FINAL
from workflows.models import Workflow

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def run_workflow(page: Page) -> Locator:
    """Press Run workflow and wait for THIS run to end (the previous result may already say done)."""
    page.locator("#workflow-run").evaluate("el => el.setAttribute('data-stale', '')")
    page.get_by_role("button", name="Run workflow").click()
    run = page.locator("#workflow-run:not([data-stale])")
    expect(run).to_have_attribute("data-status", FINAL, timeout=40_000)
    expect(run).to_have_attribute("data-status", "succeeded")
    return run


def test_a_parameter_added_in_the_editor_is_asked_for_on_run_workflow(logged_in_page: Page):
    page = logged_in_page
    page.goto("/workflows/new/")
    page.get_by_label("Name", exact=True).fill("fruit")
    page.get_by_label("Step name").fill("pick")
    page.get_by_label("Code").fill("return params.item")
    page.get_by_role("button", name="Add parameter").click()
    page.get_by_label("Parameter name").fill("item")
    page.get_by_label("Default value").fill("apple")
    # Enter presses the form's first submit button: that must be Save, not Remove.
    page.get_by_label("Default value").press("Enter")
    expect(page.locator(".messages")).to_contain_text("was created")
    assert Workflow.objects.get(name="fruit").parameters == [{"name": "item", "default": "apple"}]

    expect(page.get_by_label("item", exact=True)).to_have_value("apple")
    expect(run_workflow(page).locator("#workflow-response")).to_have_text('"apple"')
    page.get_by_label("item", exact=True).fill("pear")
    expect(run_workflow(page).locator("#workflow-response")).to_have_text('"pear"')
