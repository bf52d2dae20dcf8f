"""The console as a new user goes through it, in headless Chromium on a real worker and PostgreSQL:
complete a table's name, look at its columns in Schema, run, sort, filter, see it as a bar chart,
save it as "Top items", reload and open it from Saved queries (its chart comes back); and the same
with the keyboard alone. Screenshots, light and dark, 1280 and 390 wide, go to test-artifacts/
(README's docs/console.png is console-readme.png, copied by hand)."""
from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from integrations.models import SavedQuery
from tests.e2e import FINAL

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def finished(page: Page) -> Locator:
    run = page.locator("#query-run")
    expect(run).to_have_attribute("data-status", FINAL, timeout=30_000)
    expect(run).to_have_attribute("data-status", "succeeded")
    return run.locator(".statement-result")


def qty_column(result: Locator) -> list[str]:
    headers = [h.strip() for h in result.locator("thead th").all_text_contents()]
    index = next(i for i, h in enumerate(headers) if h.startswith("qty")) + 1
    return result.locator(f"tbody tr:visible td:nth-child({index})").all_text_contents()


def test_complete_look_run_sort_filter_chart_save_reopen(logged_in_page: Page, integration, orders):
    page = logged_in_page
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"/integrations/{integration.pk}/")
    expect(page.locator("#schema-panel")).to_contain_text("tables and views", timeout=30_000)
    editor = page.get_by_label("Query", exact=True)
    editor.click()
    page.keyboard.type("select * from ord")
    page.keyboard.press("Control+Space")
    page.locator(".cm-tooltip-autocomplete li", has_text="orders").first.click()
    page.keyboard.type(" order by id")

    schema = page.locator("#schema-panel")
    schema.get_by_role("button", name="Show columns of orders").click()
    expect(schema.locator(".columns")).to_contain_text("qty")

    editor.click()
    page.keyboard.press("Control+Enter")
    result = finished(page)
    assert qty_column(result) == ["3", "15", "8", "1"]

    qty = result.locator("thead th", has_text="qty").get_by_role("button")
    qty.click()
    qty.click()
    assert qty_column(result) == ["15", "8", "3", "1"]
    expect(result.locator("thead th", has_text="qty")).to_have_attribute("aria-sort", "descending")
    result.get_by_label("Filter").fill("p")
    expect(result).to_contain_text("3 of 4 rows")
    assert qty_column(result) == ["15", "8", "3"]
    result.get_by_label("Filter").fill("")

    result.get_by_role("tab", name="Chart").click()
    expect(result.get_by_label("Chart type")).to_have_value("bar")
    expect(result.locator("canvas")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "console-chart-1280.png"), full_page=True)

    page.locator("#save-query summary").click()
    page.get_by_label("Query name").fill("Top items")
    page.get_by_label("Description").fill("Every order, biggest first")
    page.get_by_role("button", name="Save query").click()
    expect(page.locator("#save-query")).to_contain_text("Saved query “Top items” was saved.")
    saved = SavedQuery.objects.get(name="Top items")
    assert saved.text == "select * from orders order by id" and saved.chart["type"] == "bar"
    assert saved.chart["x"] == "item" and "qty" in saved.chart["y"]

    page.reload()
    page.locator("#saved-queries").get_by_role("link", name="Top items").click()
    expect(page.locator(".opened-query")).to_contain_text("Top items")
    expect(page.get_by_label("Query", exact=True)).to_have_text("select * from orders order by id")
    page.get_by_role("button", name="Run query").click()
    reopened = finished(page)
    expect(reopened.get_by_role("tab", name="Chart")).to_have_attribute("aria-selected", "true")
    expect(reopened.locator("canvas")).to_be_visible()

    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for width in (1280, 390):
            page.set_viewport_size({"width": width, "height": 900})
            page.wait_for_timeout(300)  # the chart redraws for the new size and colours
            assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{scheme} {width}: no sideways scroll"
            page.screenshot(path=str(ARTIFACTS / f"console-{scheme}-{width}.png"), full_page=True)
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.screenshot(path=str(ARTIFACTS / "console-readme.png"))


def test_the_console_by_keyboard_alone(logged_in_page: Page, integration, orders):
    page = logged_in_page
    page.goto(f"/integrations/{integration.pk}/")
    expect(page.locator("#schema-panel")).to_contain_text("tables and views", timeout=30_000)

    def tab_until(condition: str, limit: int = 60) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate(condition):
                return
        raise AssertionError(f"Tab never reached {condition}")

    tab_until("document.activeElement.classList.contains('editor-host')")
    page.keyboard.type("select item, qty from orders order by item")
    page.keyboard.press("Control+Enter")
    result = finished(page)
    # Escape, then Tab: out of the editor, on towards the result's controls.
    page.keyboard.press("Escape")
    tab_until("document.activeElement.classList.contains('sort-button') "
              "&& document.activeElement.textContent.includes('qty')")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    assert qty_column(result) == ["15", "8", "3", "1"]
    tab_until("document.activeElement.getAttribute('role') === 'tab'")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    expect(result.get_by_role("tab", name="Chart")).to_have_attribute("aria-selected", "true")
