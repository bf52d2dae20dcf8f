"""What a user does in the browser, step by step: shared by the browser tests."""
from __future__ import annotations

from typing import Callable

from playwright.sync_api import Locator, Page, expect

from tests.e2e import FINAL


def new_integration(page: Page, kind: str, name: str) -> None:
    page.goto("/integrations/")
    page.get_by_role("link", name="New integration").first.click()
    page.get_by_label("Kind").select_option(label=kind)
    # The Kind select swaps in the kind's own fields: fill them only once they are there. PostgreSQL's
    # are there before the swap (the page opens on it), and the swap would empty what was typed since.
    expect(page.locator("#kind-fields legend")).to_have_text(f"{kind} connection")
    htmx_settled(page)
    page.get_by_label("Name", exact=True).fill(name)


def new_workflow(page: Page, name: str, step_name: str, code: str) -> None:
    page.goto("/workflows/")
    page.get_by_role("link", name="New workflow").first.click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Step name").fill(step_name)
    page.get_by_label("Code").fill(code)
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("was created")


def fetch_with(page: Page, workflow: str) -> Locator:
    """Check "Fetch credentials dynamically", choose ``workflow`` and preview its output."""
    page.get_by_label("Fetch credentials dynamically").check()
    page.get_by_label("Workflow", exact=True).select_option(label=workflow)
    page.get_by_role("button", name="Run workflow").click()
    preview = page.locator("#credentials-preview")
    expect(preview.locator("[data-status]")).to_have_attribute("data-status", FINAL, timeout=30_000)
    expect(preview.locator("[data-status]")).to_have_attribute("data-status", "succeeded")
    return preview


def connection_test_says_connected(page: Page) -> None:
    page.get_by_role("button", name="Test connection").click()
    outcome = page.locator("#test-connection-result [data-status]")
    expect(outcome).to_have_attribute("data-status", FINAL, timeout=30_000)
    expect(outcome).to_contain_text("Connected")
    expect(outcome).to_have_attribute("data-status", "succeeded")


def finished_run(page: Page, send: Callable[[], None], status: str = "succeeded") -> Locator:
    """Send a query or request with ``send`` and wait for ITS run to end.

    The result section of the previous run is marked first: it may already say
    "succeeded", and waiting on it would pass before the new run even started.
    """
    page.locator("#query-run").evaluate("el => el.setAttribute('data-stale', '')")
    send()
    run = page.locator("#query-run:not([data-stale])")
    expect(run).to_have_attribute("data-status", FINAL, timeout=30_000)
    assert run.get_attribute("data-status") == status, run.inner_text()
    return run


def htmx_settled(page: Page) -> None:
    """Wait until htmx has no request in flight and has swapped and settled what came back: a field
    swapped in answers its triggers only then."""
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')")
