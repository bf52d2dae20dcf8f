"""A user, in headless Chromium, sets up a PostgreSQL integration and queries it through the worker."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from integrations.models import Integration
from tests.conftest import wait_for
from tests.e2e import FINAL

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def fill_integration_form(page: Page, target_db, *, name: str = "Customers DB", password: str | None = None) -> None:
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Host").fill(target_db.host)
    page.get_by_label("Port").fill(str(target_db.port))
    page.get_by_label("Database").fill(target_db.database)
    page.get_by_label("Username").fill(target_db.username)
    page.get_by_label("Password", exact=True).fill(target_db.password if password is None else password)


def test_login_create_test_save_and_query(logged_in_page: Page, target_db):
    page = logged_in_page
    expect(page.get_by_role("link", name="Integrations")).to_be_visible()
    expect(page.get_by_role("link", name="Workflows")).to_be_visible()
    page.get_by_role("link", name="New integration").first.click()
    expect(page.get_by_label("SSL mode")).to_have_value("prefer")
    fill_integration_form(page, target_db)

    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#test-connection-result [data-status]")).to_have_attribute("data-status", FINAL,
                                                                                    timeout=20_000)
    expect(page.locator("#test-connection-result")).to_contain_text("Connected")

    page.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("was created")
    expect(page.get_by_role("heading", name="Customers DB")).to_be_visible()

    page.get_by_label("Query", exact=True).fill("select id, name, balance from customers order by id")
    page.get_by_role("button", name="Run query").click()
    result = page.locator("#query-run")
    expect(result).to_have_attribute("data-status", "succeeded", timeout=20_000)
    expect(result.locator("th")).to_have_text(["#", "id", "name", "balance"])
    expect(result).to_contain_text("3 rows")
    expect(result).to_contain_text("Grace Hopper")
    expect(result.get_by_role("link", name="Download CSV")).to_be_visible()
    expect(page.locator("#recent-runs")).to_contain_text("select id, name, balance from customers")


def test_ctrl_enter_runs_the_query_and_sql_errors_are_shown(logged_in_page: Page, target_db, user):
    integration = Integration.objects.create_with_default(
        name="Target", kind="postgres", created_by=user,
        config={k: v for k, v in target_db.form_values().items() if k != "password"},
        secrets={"password": target_db.password})
    page = logged_in_page
    page.goto(f"/integrations/{integration.pk}/")
    page.get_by_label("Query", exact=True).fill("selec 1")
    page.get_by_label("Query", exact=True).press("Control+Enter")
    result = page.locator("#query-run")
    expect(result).to_have_attribute("data-status", FINAL, timeout=20_000)
    expect(result).to_contain_text('syntax error at or near "selec"')
    expect(result).to_contain_text("Query failed")
    expect(result.locator(".status")).to_have_text("Failed")


def test_wrong_password_shows_the_databases_message(logged_in_page: Page, target_db):
    page = logged_in_page
    page.goto("/integrations/new/")
    fill_integration_form(page, target_db, password="definitely-wrong")
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#test-connection-result [data-status]")).to_have_attribute("data-status", FINAL,
                                                                                    timeout=20_000)
    expect(page.locator("#test-connection-result")).to_contain_text(
        f'password authentication failed for user "{target_db.username}"')
    expect(page.locator("#test-connection-result")).not_to_contain_text("definitely-wrong")


def test_cancel_shows_cancelled(logged_in_page: Page, target_db, user):
    integration = Integration.objects.create_with_default(
        name="Target", kind="postgres", created_by=user,
        config={k: v for k, v in target_db.form_values().items() if k != "password"},
        secrets={"password": target_db.password})
    page = logged_in_page
    page.goto(f"/integrations/{integration.pk}/")
    page.get_by_label("Query", exact=True).fill("select pg_sleep(60)")
    page.get_by_role("button", name="Run query").click()
    result = page.locator("#query-run")
    expect(result).to_have_attribute("data-status", "running", timeout=10_000)
    expect(result.locator(".elapsed")).to_have_text(re.compile(r"\d+\.\d s"))

    def sleeping_on_the_server() -> int:
        with target_db.admin() as conn:
            # Read through a cursor, the statement shows as FETCH: any active credtool session is it.
            return conn.execute("select count(*) from pg_stat_activity where application_name = 'credtool' "
                                "and state = 'active'").fetchone()[0]

    wait_for(sleeping_on_the_server, message="the query to be running on the server")
    page.get_by_role("button", name="Cancel").click()
    expect(result).to_have_attribute("data-status", "cancelled", timeout=15_000)
    expect(result.locator(".status")).to_have_text("Cancelled")
    assert sleeping_on_the_server() == 0


def test_empty_form_shows_errors_beside_fields(logged_in_page: Page):
    page = logged_in_page
    page.goto("/integrations/new/")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".errorlist").first).to_contain_text("This field is required.")
    assert Integration.objects.count() == 0
