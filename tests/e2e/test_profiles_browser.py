"""One integration, two profiles, in headless Chromium: a Builder gives Staging its own configuration
(typed, or fetched by one workflow that reads ``profile``), the **Profile** select chooses which
database answers, and a Runner shared on Staging only never reaches Production."""
from __future__ import annotations

import json
from typing import Iterator

import pytest
from playwright.sync_api import Locator, Page, expect

from integrations.models import Configuration, ConfigurationProfile, Integration, QueryRun
from profiles.models import Profile
from tests.conftest import USER_PASSWORD
from tests.e2e.steps import (connection_test_says_connected, fetch_with, finished_run, new_integration,
                             new_workflow)
from tests.profiles.conftest import staging_db  # noqa: F401
from workflows.models import WorkflowRun

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

NAMES_SQL = "select name from customers order by id"
PRODUCTION_NAMES = ["Ada Lovelace", "Grace Hopper", "Alan Turing"]
STAGING_NAMES = ["Staging Sam", "Test Tina"]
# The same step serves every profile: it reads the key of the profile it runs under.
GET_SECRETS_FOR_PROFILE = """\
import boto3, json
client = boto3.session.Session().client(
    service_name="secretsmanager", region_name="us-east-1", endpoint_url=Env.aws_endpoint_url,
    aws_access_key_id=Env.aws_access_key_id, aws_secret_access_key=Env.aws_secret_access_key)
return json.loads(client.get_secret_value(SecretId=f"postgresSecrets-{profile}")["SecretString"])
"""


# --- Fixtures ----------------------------------------------------------------------------------

@pytest.fixture
def shop(user, target_db, staging_db) -> Integration:  # noqa: F811
    """"Shop" as test 1 leaves it: Default on the Production database, Staging on its own."""
    shop = Integration.objects.create_with_default(
        name="Shop", kind="postgres", created_by=user, config=static_values(target_db),
        secrets={"password": target_db.password})
    staging = Configuration(integration=shop, config=static_values(staging_db))
    staging.set_secrets({"password": staging_db.password})
    staging.save()
    ConfigurationProfile.objects.create(integration=shop, configuration=staging,
                                        profile=Profile.objects.get(key="staging"))
    return shop


@pytest.fixture
def secret_per_profile(secretsmanager, target_db, staging_db) -> Iterator[None]:  # noqa: F811
    names = {"production": target_db, "staging": staging_db}
    for key, db in names.items():
        secretsmanager.create_secret(Name=f"postgresSecrets-{key}", SecretString=json.dumps({
            "host": db.host, "port": db.port, "dbname": db.database, "username": db.username,
            "password": db.password}))
    yield
    for key in names:
        secretsmanager.delete_secret(SecretId=f"postgresSecrets-{key}", ForceDeleteWithoutRecovery=True)


def static_values(db) -> dict:
    return {k: v for k, v in db.form_values().items() if k != "password"}


# --- What a user does, step by step ------------------------------------------------------------

def add_configuration_for(page: Page, profile_name: str) -> None:
    """From the integration's page: **Add configuration**, tick ``profile_name``."""
    page.locator("#configurations").get_by_role("link", name="Add configuration").click()
    expect(page.get_by_role("heading", name="Add configuration")).to_be_visible()
    page.get_by_label(profile_name, exact=True).check()


def type_connection(page: Page, db) -> None:
    page.get_by_label("Host").fill(db.host)
    page.get_by_label("Port").fill(str(db.port))
    page.get_by_label("Database").fill(db.database)
    page.get_by_label("Username").fill(db.username)
    page.get_by_label("Password", exact=True).fill(db.password)


def bind_connection(page: Page, workflow: str) -> None:
    for label, key in (("Host", "host"), ("Port", "port"), ("Database", "dbname"), ("Username", "username"),
                       ("Password", "password")):
        page.get_by_label(label, exact=True).fill(f"{{{{{workflow}.response.{key}}}}}")


def save_says(page: Page, message: str) -> None:
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text(message)


def run_under(page: Page, profile_name: str, sql: str = NAMES_SQL) -> Locator:
    page.get_by_label("Profile").select_option(label=profile_name)
    page.get_by_label("Query", exact=True).fill(sql)
    run = finished_run(page, lambda: page.get_by_role("button", name="Run query").click())
    expect(run.locator(".profile-badge")).to_have_text(profile_name)
    return run


def expect_names(run: Locator, names: list[str]) -> None:
    expect(run.locator("table.result tbody td:nth-child(2)")).to_have_text(names)


def expect_no_password_of(page: Page, *databases) -> None:
    content = page.content()
    assert not [db.username for db in databases if db.password in content]


def log_in(page: Page, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(USER_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/integrations/")


# --- Tests -------------------------------------------------------------------------------------

def test_staging_gets_its_own_configuration_and_the_profile_chooses_the_database(
        logged_in_page: Page, target_db, staging_db):  # noqa: F811
    page = logged_in_page
    new_integration(page, "PostgreSQL", "Shop")
    type_connection(page, target_db)
    connection_test_says_connected(page)
    save_says(page, "was created")
    expect(page.get_by_role("heading", name="Shop")).to_be_visible()

    add_configuration_for(page, "Staging")
    type_connection(page, staging_db)
    connection_test_says_connected(page)
    save_says(page, "Configuration “Staging” of “Shop” was added.")
    rows = page.locator("#configurations tbody tr")
    expect(rows.locator("td:first-child")).to_have_text(["Default", "Staging"])
    expect(rows.nth(0).locator("td:nth-child(2)")).to_have_text("Production")  # Staging has its own

    expect_names(run_under(page, "Staging"), STAGING_NAMES)
    page.reload()
    expect(page.get_by_label("Profile")).to_have_value("staging")  # remembered, not the default
    expect(run_under(page, "Production").locator("table.result tbody td:nth-child(2)").first).to_have_text(
        "Ada Lovelace")
    profiles_column = page.locator("#recent-runs tbody td:nth-child(3)")
    expect(profiles_column).to_have_text(["Production", "Staging"])  # newest first

    page.reload()
    expect(page.get_by_label("Profile")).to_have_value("production")  # the last choice
    expect_no_password_of(page, target_db, staging_db)


def test_a_second_configuration_for_staging_is_refused_naming_the_first(logged_in_page: Page, shop,
                                                                       staging_db):  # noqa: F811
    page = logged_in_page
    page.goto(f"/integrations/{shop.pk}/")
    add_configuration_for(page, "Staging")
    type_connection(page, staging_db)
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#field-profiles .errorlist")).to_contain_text(
        "Staging already has a configuration on this integration (“Staging”)")
    expect(page.get_by_label("Staging", exact=True)).to_be_checked()
    assert shop.configurations.count() == 2
    assert ConfigurationProfile.objects.filter(integration=shop).count() == 1


def test_a_runner_shared_on_staging_only_never_reaches_production(logged_in_page: Page, shop, runner):
    page = logged_in_page
    page.goto(f"/integrations/{shop.pk}/edit/")
    page.get_by_label("rob under Staging").check()
    expect(page.get_by_label("rob under Production")).not_to_be_checked()
    save_says(page, "“Shop” was saved.")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/accounts/login/**")

    log_in(page, "rob")
    page.goto(f"/integrations/{shop.pk}/")
    expect(page.get_by_label("Profile").locator("option")).to_have_text(["Staging"])
    expect_names(run_under(page, "Staging"), STAGING_NAMES)
    expect(page.locator("#configurations")).to_have_count(0)  # Runners never see configurations

    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    crafted = page.request.post(f"/integrations/{shop.pk}/query/", form={"sql": NAMES_SQL, "profile": "production"},
                                headers={"X-CSRFToken": token})
    assert crafted.status == 404
    assert not QueryRun.objects.filter(profile__key="production").exists()
    assert QueryRun.objects.filter(profile__key="staging", user=runner).count() == 1


def test_one_workflow_fetches_each_profiles_credentials(logged_in_page: Page, secret_per_profile,
                                                        target_db, staging_db):  # noqa: F811
    page = logged_in_page
    new_workflow(page, "getSecrets", "readSecret", GET_SECRETS_FOR_PROFILE)

    new_integration(page, "PostgreSQL", "Shop (fetched)")
    preview = fetch_with(page, "getSecrets")  # a new integration previews under Production
    expect(preview.locator("#workflow-response")).to_contain_text('"username": "app_user"')
    expect_no_password_of(page, target_db, staging_db)
    bind_connection(page, "getSecrets")
    connection_test_says_connected(page)
    save_says(page, "was created")

    add_configuration_for(page, "Staging")
    preview = fetch_with(page, "getSecrets")  # under the ticked profile
    expect(preview.locator("#workflow-response")).to_contain_text('"username": "staging_user"')
    expect_no_password_of(page, target_db, staging_db)
    bind_connection(page, "getSecrets")
    connection_test_says_connected(page)
    save_says(page, "Configuration “Staging” of “Shop (fetched)” was added.")
    expect(page.locator("#configurations tbody tr td:nth-child(4)")).to_have_text(
        ["fetched by getSecrets", "fetched by getSecrets"])

    expect_names(run_under(page, "Staging"), STAGING_NAMES)
    expect_names(run_under(page, "Production"), PRODUCTION_NAMES)
    expect_no_password_of(page, target_db, staging_db)
    previews = WorkflowRun.objects.filter(trigger="preview").order_by("pk")
    assert [run.profile.key for run in previews] == ["production", "staging"]
