"""The API tokens page in headless Chromium: create a token, copy it with **Copy**, use it, revoke it."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_user_creates_copies_uses_and_revokes_a_token(logged_in_page):
    page = logged_in_page
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])

    page.get_by_role("link", name="API tokens").click()
    page.get_by_label("Token name").fill("deploy script")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_text("it will not be shown again")).to_be_visible()
    secret = page.get_by_label("Token").input_value()
    assert secret.startswith("ct_")
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret

    answer = page.request.post("/api/v1/workflows/nothing/run", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status == 404 and "No workflow" in answer.json()["error"]

    page.get_by_role("link", name="Back to API tokens").click()
    row = page.locator("#api-tokens tr", has_text="deploy script")
    expect(row).to_contain_text(secret[:11])
    expect(row).not_to_contain_text("Never")  # it was just used
    row.get_by_role("button", name="Revoke deploy script").click()
    expect(page.get_by_text("was revoked")).to_be_visible()
    answer = page.request.post("/api/v1/workflows/nothing/run", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status == 401
    assert not problems, problems
