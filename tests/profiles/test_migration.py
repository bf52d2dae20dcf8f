"""Existing integrations become integrations with one Default configuration, losing nothing; and back."""
from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from credtool import crypto

pytestmark = pytest.mark.django_db(transaction=True)

# The workflows app goes back too: the Workflow rows made here must fit its table as it was then.
BEFORE = [("integrations", "0009_connectioncheck_profile_queryrun_profile"), ("workflows", "0004_workflowrun_profile")]
AFTER = [("integrations", "0012_integration_fields_moved")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_integrations_move_onto_a_default_configuration_and_back(django_user_model):
    try:
        old = migrate(BEFORE)
        User = old.get_model("auth", "User")
        runner = User.objects.create(username="rob")
        Workflow = old.get_model("workflows", "Workflow")
        workflow = Workflow.objects.create(name="getSecrets")
        Integration = old.get_model("integrations", "Integration")
        blob = crypto.encrypt_json({"password": "s3cret"})
        shop = Integration.objects.create(
            name="Shop", kind="postgres", config={"host": "db.internal", "port": 5432}, secrets_encrypted=blob,
            statement_timeout_s=12, read_only=True, revision=7)
        fetched = Integration.objects.create(
            name="Fetched", kind="postgres", config={"host": "{{getSecrets.response.host}}"},
            fetch_credentials=True, credentials_workflow=workflow, credentials_cache_s=60)
        shop.shared_with.add(runner)
        old.get_model("integrations", "QueryRun").objects.create(integration=shop, sql="select 1")

        new = migrate(AFTER)
        Configuration = new.get_model("integrations", "Configuration")
        default = Configuration.objects.get(integration_id=shop.pk)
        assert default.is_default and default.config == {"host": "db.internal", "port": 5432}
        assert default.secrets_encrypted == blob and crypto.decrypt_json(default.secrets_encrypted) == {"password": "s3cret"}
        assert default.revision == 7
        shop_now = new.get_model("integrations", "Integration").objects.get(pk=shop.pk)
        assert (shop_now.statement_timeout_s, shop_now.read_only) == (12, True)
        other = Configuration.objects.get(integration_id=fetched.pk)
        assert (other.fetch_credentials, other.credentials_workflow_id, other.credentials_cache_s) == (True, workflow.pk, 60)
        shares = new.get_model("integrations", "Share").objects.filter(integration_id=shop.pk)
        assert sorted(s.profile.key for s in shares) == ["production", "staging"] and {s.user_id for s in shares} == {runner.pk}
        run = new.get_model("integrations", "QueryRun").objects.get()
        assert run.profile.key == "production" and run.configuration_id == default.pk

        back = migrate(BEFORE)
        shop_back = back.get_model("integrations", "Integration").objects.get(pk=shop.pk)
        assert shop_back.config == {"host": "db.internal", "port": 5432} and shop_back.secrets_encrypted == blob
        assert shop_back.revision == 7 and list(shop_back.shared_with.values_list("pk", flat=True)) == [runner.pk]
        fetched_back = back.get_model("integrations", "Integration").objects.get(pk=fetched.pk)
        assert fetched_back.fetch_credentials and fetched_back.credentials_workflow_id == workflow.pk
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
