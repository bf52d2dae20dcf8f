"""One integration, two profiles: a Default configuration on the Production database and a
Staging configuration on the Staging database, run by a real worker. Which database answers
depends only on the **Profile** chosen; Runners get only the profiles shared with them."""
from __future__ import annotations

import json

import pytest

from integrations.models import Configuration, ConfigurationProfile, ConnectionCheck, Integration, QueryRun
from profiles.models import Profile
from tests.conftest import result, wait_for_final
from workflows.models import Step, Workflow, WorkflowRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

NAMES = "select name from customers order by id"


def profile(key: str) -> Profile:
    return Profile.objects.get(key=key)


def static_values(db) -> dict:
    return {k: v for k, v in db.form_values().items() if k != "password"}


def add_configuration(integration, profiles, config, secrets=None) -> Configuration:
    configuration = Configuration(integration=integration, config=config)
    configuration.set_secrets(secrets or {})
    configuration.save()
    for each in profiles:
        ConfigurationProfile.objects.create(integration=integration, configuration=configuration, profile=each)
    return configuration


@pytest.fixture
def shop(user, target_db, staging_db) -> Integration:
    """Default: the Production database; Staging: its own configuration on the Staging database."""
    shop = Integration.objects.create_with_default(
        name="Shop", kind="postgres", created_by=user, config=static_values(target_db),
        secrets={"password": target_db.password})
    add_configuration(shop, [profile("staging")], static_values(staging_db), {"password": staging_db.password})
    return shop


def run(client, integration, sql, profile_key=None) -> QueryRun:
    data = {"sql": sql} if profile_key is None else {"sql": sql, "profile": profile_key}
    response = client.post(f"/integrations/{integration.pk}/query/", data, HTTP_HX_REQUEST="true")
    assert response.status_code == 200, response.status_code
    return wait_for_final(QueryRun, QueryRun.objects.latest("pk").pk)


def names(run: QueryRun) -> list[str]:
    assert run.status == "succeeded", run.error_text
    return [row[0] for row in result(run)["rows"]]


def test_the_profile_chooses_the_database_that_answers(logged_in_client, shop):
    staging_run = run(logged_in_client, shop, NAMES, "staging")
    assert names(staging_run) == ["Staging Sam", "Test Tina"]
    production_run = run(logged_in_client, shop, NAMES, "production")
    assert names(production_run) == ["Ada Lovelace", "Grace Hopper", "Alan Turing"]
    # Recorded on the run, shown on the result and in Recent runs.
    assert (staging_run.profile.key, staging_run.configuration.label) == ("staging", "Staging")
    assert (production_run.profile.key, production_run.configuration.label) == ("production", "Default")
    html = logged_in_client.get(f"/integrations/{shop.pk}/runs/{staging_run.pk}/", HTTP_HX_REQUEST="true")
    assert 'class="badge profile-badge" title="Profile">Staging<' in html.content.decode()
    recent = logged_in_client.get(f"/integrations/{shop.pk}/").content.decode().split('id="recent-runs"')[1]
    assert "<td>Staging</td>" in recent and "<td>Production</td>" in recent


def test_the_select_defaults_to_the_last_choice_else_production(logged_in_client, shop, user):
    page = logged_in_client.get(f"/integrations/{shop.pk}/").content.decode()
    assert '<option value="production" selected>Production</option>' in page
    run(logged_in_client, shop, "select 1", "staging")
    page = logged_in_client.get(f"/integrations/{shop.pk}/").content.decode()
    assert '<option value="staging" selected>Staging</option>' in page
    # The user's last choice, not the browser session's: it holds on the next login too.
    logged_in_client.logout()
    logged_in_client.force_login(user)
    page = logged_in_client.get(f"/integrations/{shop.pk}/").content.decode()
    assert '<option value="staging" selected>Staging</option>' in page


def test_a_runner_shared_on_staging_only_cannot_reach_production(client, shop, runner):
    shop.share_with(runner, [profile("staging")])
    client.force_login(runner)
    page = client.get(f"/integrations/{shop.pk}/").content.decode()
    assert '<option value="staging" selected>Staging</option>' in page
    assert 'value="production"' not in page  # not offered...
    response = client.post(f"/integrations/{shop.pk}/query/", {"sql": NAMES, "profile": "production"})
    assert response.status_code == 404  # ...and refused when crafted
    assert not QueryRun.objects.exists()
    assert names(run(client, shop, NAMES, "staging")) == ["Staging Sam", "Test Tina"]


def test_a_profile_without_a_configuration_of_its_own_uses_default(logged_in_client, shop):
    Profile.objects.create(key="qa", name="QA")
    assert names(run(logged_in_client, shop, NAMES, "qa"))[0] == "Ada Lovelace"


def test_test_connection_runs_per_configuration(logged_in_client, shop, staging_db):
    staging = shop.configurations.get(is_default=False)
    data = {"integration": shop.pk, "configuration": staging.pk, "profiles": [profile("staging").pk],
            **static_values(staging_db), "password": ""}  # blank: the stored Staging password
    response = logged_in_client.post("/integrations/test-connection/", data)
    assert response.status_code == 200
    check = wait_for_final(ConnectionCheck, ConnectionCheck.objects.latest("pk").pk)
    assert check.status == "succeeded", check.message
    assert check.profile.key == "staging" and check.configuration_id == staging.pk
    # The stored Staging password is never sent as another user.
    data.update(username="app_user", database="credtool_target")
    response = logged_in_client.post("/integrations/test-connection/", data)
    assert "Type the password again" in response.content.decode()
    assert ConnectionCheck.objects.count() == 1


def test_adding_a_configuration_and_a_second_one_for_the_same_profile_is_refused(logged_in_client, user,
                                                                                 target_db, staging_db):
    shop = Integration.objects.create_with_default(
        name="Shop", kind="postgres", created_by=user, config=static_values(target_db),
        secrets={"password": target_db.password})
    form = {"configuration": "new", "profiles": [profile("staging").pk], **static_values(staging_db),
            "password": staging_db.password}
    response = logged_in_client.post(f"/integrations/{shop.pk}/configurations/new/", form, follow=True)
    assert "Configuration “Staging” of “Shop” was added." in response.content.decode()
    staging = shop.configurations.get(is_default=False)
    assert staging.secrets() == {"password": staging_db.password} and staging.config["database"] == "credtool_staging"

    response = logged_in_client.post(f"/integrations/{shop.pk}/configurations/new/", form)
    assert response.status_code == 200
    assert "Staging already has a configuration on this integration (“Staging”)" in response.content.decode()
    assert shop.configurations.count() == 2
    page = logged_in_client.get(f"/integrations/{shop.pk}/").content.decode()
    assert "Configurations" in page and "Add configuration" in page and "credtool_staging" in page


GET_SECRETS_FOR_PROFILE = """\
import boto3, json
client = boto3.session.Session().client(
    service_name="secretsmanager", region_name="us-east-1", endpoint_url=Env.aws_endpoint_url,
    aws_access_key_id=Env.aws_access_key_id, aws_secret_access_key=Env.aws_secret_access_key)
return json.loads(client.get_secret_value(SecretId=f"postgresSecrets-{profile}")["SecretString"])
"""
BINDINGS = {"host": "{{getSecrets.response.host}}", "port": "{{getSecrets.response.port}}",
            "database": "{{getSecrets.response.dbname}}", "username": "{{getSecrets.response.username}}",
            "password": "{{getSecrets.response.password}}", "sslmode": "prefer"}


@pytest.fixture
def secret_per_profile(secretsmanager, target_db, staging_db):
    for key, db in (("production", target_db), ("staging", staging_db)):
        secretsmanager.create_secret(Name=f"postgresSecrets-{key}", SecretString=json.dumps({
            "host": db.host, "port": db.port, "dbname": db.database, "username": db.username,
            "password": db.password}))
    yield
    for key in ("production", "staging"):
        secretsmanager.delete_secret(SecretId=f"postgresSecrets-{key}", ForceDeleteWithoutRecovery=True)


def test_one_workflow_fetches_each_profiles_secret_and_the_cache_keeps_them_apart(
        logged_in_client, user, secret_per_profile, staging_db):
    workflow = Workflow.objects.create(name="getSecrets")
    Step.objects.create(workflow=workflow, position=0, name="fetch", code=GET_SECRETS_FOR_PROFILE, timeout_s=20)
    shop = Integration.objects.create_with_default(
        name="Shop", kind="postgres", created_by=user, config=BINDINGS, fetch_credentials=True,
        credentials_workflow=workflow, credentials_cache_s=300)

    assert names(run(logged_in_client, shop, NAMES, "staging"))[0] == "Staging Sam"
    assert names(run(logged_in_client, shop, NAMES, "production"))[0] == "Ada Lovelace"
    assert names(run(logged_in_client, shop, NAMES, "staging"))[0] == "Staging Sam"
    assert names(run(logged_in_client, shop, NAMES, "production"))[0] == "Ada Lovelace"
    fetches = WorkflowRun.objects.filter(workflow=workflow, trigger="credentials").order_by("pk")
    # One fetch per profile, then the cache: the Staging secret never serves Production.
    assert [r.profile.key for r in fetches] == ["staging", "production"]
    assert staging_db.password not in json.dumps([r.output for r in fetches])  # masked in the records
