"""The reference flow in headless Chromium: secret in (moto's) AWS Secrets Manager, workflow getSecrets,
an integration that fetches its credentials with it, preview, Test connection, Save, Run query."""
from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from devtools.demo import GET_SECRETS_CODE
from integrations.models import Integration
from tests.e2e import FINAL
from workflows.models import Step, Workflow, WorkflowRun

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture
def postgres_secret(secretsmanager, target_db):
    payload = {"host": target_db.host, "port": target_db.port, "dbname": target_db.database,
               "username": target_db.username, "password": target_db.password}
    secretsmanager.create_secret(Name="postgresSecrets", SecretString=json.dumps(payload))
    yield payload
    secretsmanager.delete_secret(SecretId="postgresSecrets", ForceDeleteWithoutRecovery=True)


def test_the_reference_flow_end_to_end(logged_in_page: Page, postgres_secret, target_db):
    page = logged_in_page
    # 2. The workflow getSecrets, built in the browser.
    page.goto("/workflows/new/")
    page.get_by_label("Name", exact=True).fill("getSecrets")
    page.get_by_label("Step name").fill("getSecret")
    page.get_by_label("Code").fill(GET_SECRETS_CODE)
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("was created")

    # 3. The integration: fetch credentials dynamically, preview, bindings.
    page.goto("/integrations/new/")
    page.get_by_label("Name", exact=True).fill("Customers (fetched)")
    expect(page.get_by_label("Workflow", exact=True)).to_be_hidden()
    page.get_by_label("Fetch credentials dynamically").check()
    page.get_by_label("Workflow", exact=True).select_option(label="getSecrets")
    page.get_by_role("button", name="Run workflow").click()
    preview = page.locator("#credentials-preview")
    expect(preview.locator("[data-status]")).to_have_attribute("data-status", FINAL, timeout=30_000)
    expect(preview.locator("#workflow-response")).to_contain_text('"username": "app_user"')
    expect(preview.locator("#workflow-response")).to_contain_text('"password": "••••••••"')
    expect(preview).not_to_contain_text(target_db.password)

    page.get_by_label("Host").fill("{{getSecrets.response.host}}")
    page.get_by_label("Port").fill("{{getSecrets.response.port}}")
    page.get_by_label("Database").fill("{{getSecrets.response.dbname}}")
    page.get_by_label("Username").fill("{{getSecrets.response.username}}")
    page.get_by_label("Password", exact=True).fill("{{getSecrets.response.password}}")

    # The preview shows what each bound field resolves to, secrets masked.
    page.get_by_role("button", name="Run workflow").click()
    expect(preview.locator("[data-status]")).to_have_attribute("data-status", FINAL, timeout=30_000)
    resolved = preview.locator("table.resolved")
    expect(resolved).to_contain_text("app_user")
    expect(resolved.locator("tr", has_text="Password")).to_contain_text("••••••••")

    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#test-connection-result [data-status]")).to_have_attribute("data-status", FINAL,
                                                                                    timeout=30_000)
    expect(page.locator("#test-connection-result")).to_contain_text("Connected")

    page.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("was created")
    default = Integration.objects.get(name="Customers (fetched)").default_configuration
    assert default.fetch_credentials and default.secrets() == {}

    # 4. Queries: the worker fetches once and reuses the credentials.
    for _ in range(3):
        page.get_by_label("Query", exact=True).fill("select name from customers order by id")
        page.get_by_role("button", name="Run query").click()
        expect(page.locator("#query-run")).to_have_attribute("data-status", "succeeded", timeout=30_000)
        expect(page.locator("#query-run")).to_contain_text("Ada Lovelace")
    expect(page.locator("body")).not_to_contain_text(target_db.password)
    workflow = Workflow.objects.get(name="getSecrets")
    assert WorkflowRun.objects.filter(workflow=workflow, trigger="credentials").count() == 1


def test_a_binding_to_a_missing_field_is_reported_before_saving(logged_in_page: Page, postgres_secret):
    workflow = Workflow.objects.create(name="getSecrets")
    Step.objects.create(workflow=workflow, position=0, name="getSecret", code=GET_SECRETS_CODE)
    page = logged_in_page
    page.goto("/integrations/new/")
    page.get_by_label("Name", exact=True).fill("Typo")
    page.get_by_label("Fetch credentials dynamically").check()
    page.get_by_label("Workflow", exact=True).select_option(label="getSecrets")
    page.get_by_role("button", name="Run workflow").click()
    expect(page.locator("#workflow-response")).to_be_visible(timeout=30_000)
    page.get_by_label("Host").fill("{{getSecrets.response.hots}}")
    page.get_by_label("Database").fill("{{getSecrets.response.dbname}}")
    page.get_by_label("Username").fill("{{getSecretz.response.username}}")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#field-host .errorlist")).to_contain_text('no key "hots"')
    expect(page.locator("#field-username .errorlist")).to_contain_text('no workflow "getSecretz"')
    assert not Integration.objects.exists()
