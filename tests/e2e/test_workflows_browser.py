"""A user builds and runs workflows in headless Chromium; a real worker runs the steps."""
from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e import FINAL
from workflows.models import Workflow

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def new_workflow(page: Page, name: str, steps: list[tuple[str, str]], timeout_s: int | None = None) -> None:
    page.goto("/workflows/")
    page.get_by_role("link", name="New workflow").first.click()
    page.get_by_label("Name", exact=True).fill(name)
    for i, (step_name, code) in enumerate(steps):
        if i > 0:
            page.get_by_role("button", name="Add step").click()
            expect(page.get_by_label("Step name")).to_have_count(i + 1)
        page.get_by_label("Step name").nth(i).fill(step_name)
        page.get_by_label("Code").nth(i).fill(code)
        if timeout_s:
            page.get_by_label("Timeout (seconds)").nth(i).fill(str(timeout_s))
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("was created")


def run_workflow(page: Page):
    page.get_by_role("button", name="Run workflow").click()
    result = page.locator("#workflow-run")
    expect(result).to_have_attribute("data-status", FINAL, timeout=40_000)
    return result


def test_a_step_reads_env_and_its_output_is_previewed(logged_in_page: Page):
    page = logged_in_page
    new_workflow(page, "hello", [("greet", 'return {"greeting": Env.greeting, "n": 40 + 2}')])
    result = run_workflow(page)
    expect(result.locator("#workflow-response")).to_contain_text('"greeting": "hello from the worker"')
    expect(result.locator("#workflow-response")).to_contain_text('"n": 42')
    expect(result.locator(".status").first).to_have_text("Done")


def test_two_steps_where_the_second_uses_the_first(logged_in_page: Page):
    page = logged_in_page
    new_workflow(page, "chain", [("first", 'return {"n": 20}'), ("second", 'return first.output["n"] + 22')])
    assert [s.name for s in Workflow.objects.get(name="chain").steps.all()] == ["first", "second"]
    result = run_workflow(page)
    expect(result.locator("#workflow-response")).to_have_text("42")


def test_a_raising_step_shows_its_error_and_line(logged_in_page: Page):
    page = logged_in_page
    new_workflow(page, "fails", [("first", "x = 1\nraise RuntimeError('secret not found')")])
    result = run_workflow(page)
    expect(result.locator(".status").first).to_have_text("Failed")
    expect(result).to_contain_text("RuntimeError")
    expect(result).to_contain_text("on line 2")
    expect(result).to_contain_text("secret not found")


def test_an_endless_step_times_out(logged_in_page: Page):
    page = logged_in_page
    new_workflow(page, "spin", [("loop", "while True: pass")], timeout_s=2)
    result = run_workflow(page)
    expect(result.locator(".status").first).to_have_text("Timed out")
    expect(result).to_contain_text("timed out")


def test_os_environ_in_a_step_shows_none_of_the_apps_secrets(logged_in_page: Page):
    page = logged_in_page
    new_workflow(page, "environ", [("env", "import os\nreturn sorted(os.environ)")])
    result = run_workflow(page)
    response = result.locator("#workflow-response")
    expect(response).to_contain_text("PATH")
    for name in ("SECRET_KEY", "DATABASE_URL", "ENCRYPTION", "BROKER", "CREDTOOL_APP_ENV"):
        expect(response).not_to_contain_text(name)


def test_a_returned_password_is_masked(logged_in_page: Page):
    page = logged_in_page
    new_workflow(page, "creds", [("fetch", 'return {"username": "app", "password": Env.db_password}')])
    result = run_workflow(page)
    expect(result.locator("#workflow-response")).to_contain_text('"password": "••••••••"')
    expect(page.locator("body")).not_to_contain_text("hunter2-very-secret")


def test_steps_can_be_reordered_and_removed_in_the_editor(logged_in_page: Page):
    page = logged_in_page
    page.goto("/workflows/new/")
    page.get_by_label("Name", exact=True).fill("order")
    page.get_by_label("Step name").nth(0).fill("a")
    page.get_by_role("button", name="Add step").click()
    page.get_by_label("Step name").nth(1).fill("b")
    page.get_by_role("button", name="Add step").click()
    page.get_by_label("Step name").nth(2).fill("c")
    page.get_by_role("button", name="Move step 3 up").click()  # c above b
    expect(page.get_by_label("Step name").nth(1)).to_have_value("c")
    page.get_by_role("button", name="Remove step 1").click()  # a goes
    expect(page.get_by_label("Step name")).to_have_count(2)
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("was created")
    assert [s.name for s in Workflow.objects.get(name="order").steps.all()] == ["c", "b"]
