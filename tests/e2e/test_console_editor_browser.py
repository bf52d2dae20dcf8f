"""The console's editor and Schema panel in headless Chromium, a real worker reading a real PostgreSQL:
completion of the integration's own tables, the panel's columns and inserts, Ctrl+Enter on the
selection, the keyboard never trapped, and the draft kept across reloads."""
from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e import FINAL

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def editor(page: Page):
    return page.locator(".console .cm-content")


def open_console(page: Page, integration) -> None:
    page.goto(f"/integrations/{integration.pk}/")
    expect(page.locator("#schema-panel")).to_contain_text("tables and views", timeout=30_000)


def test_completion_offers_the_integrations_own_tables_and_the_panel_inserts_names(logged_in_page: Page,
                                                                                  integration, orders):
    page = logged_in_page
    open_console(page, integration)
    box = editor(page)
    box.click()
    page.keyboard.type("select * from ord")
    page.keyboard.press("Control+Space")
    option = page.locator(".cm-tooltip-autocomplete li", has_text="orders")
    expect(option.first).to_be_visible()
    option.first.click()
    expect(box).to_have_text("select * from orders")

    # The panel: orders' columns with their types and primary key, inserted where the cursor is.
    panel = page.locator("#schema-panel")
    panel.get_by_role("button", name="Show columns of orders").click()
    columns = panel.locator(".table-node", has=page.locator("button.insert", has_text="orders")).locator(".columns")
    expect(columns).to_contain_text("qty")
    expect(columns).to_contain_text("integer")
    expect(columns.locator(".pk")).to_have_count(1)
    box.click()
    page.keyboard.press("End")
    page.keyboard.type(" where ")
    columns.get_by_role("button", name="qty").click()
    expect(box).to_have_text("select * from orders where qty")

    # The filter narrows the tables.
    panel.get_by_label("Filter tables").fill("cust")
    expect(panel.locator(".table-node:visible")).to_have_count(1)
    expect(panel.locator(".table-node:visible")).to_contain_text("customers")


def test_ctrl_enter_runs_the_selection_alone_and_the_draft_survives_a_reload(logged_in_page: Page,
                                                                             integration, orders):
    page = logged_in_page
    open_console(page, integration)
    box = editor(page)
    box.click()
    page.keyboard.type("select 1 as first;\nselect item from orders order by qty desc limit 1")
    # Select the second line only, then Ctrl+Enter.
    page.keyboard.press("Home")
    page.keyboard.press("Shift+End")
    page.keyboard.press("Control+Enter")
    run = page.locator("#query-run")
    expect(run).to_have_attribute("data-status", FINAL, timeout=30_000)
    expect(run.locator("table.result")).to_contain_text("pear")
    expect(run).not_to_contain_text("first")
    expect(box).to_contain_text("select 1 as first;")  # the text stays as typed

    page.wait_for_timeout(1200)  # the draft is saved shortly after typing stops
    page.reload()
    expect(editor(page)).to_contain_text("select item from orders order by qty desc limit 1")


def test_tab_indents_and_escape_then_tab_leaves_the_editor(logged_in_page: Page, integration):
    page = logged_in_page
    page.goto(f"/integrations/{integration.pk}/")
    box = editor(page)
    box.click()
    page.keyboard.type("select")
    page.keyboard.press("Tab")
    expect(page.locator("#id_sql")).to_have_value("  select")  # indented, and the form's field follows
    in_editor = "document.activeElement.classList.contains('editor-host')"  # the editor's shadow host
    assert page.evaluate(in_editor)
    # With completion offering something as well: Escape closes it and the next Tab still leaves.
    page.keyboard.type(" 1 as item order by item")
    page.keyboard.press("Escape")
    page.keyboard.press("Tab")
    assert not page.evaluate(in_editor), "Escape then Tab must leave the editor"
