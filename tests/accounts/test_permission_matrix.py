"""Every URL × method × role → the status it must answer. One table, enforced on the server.

Roles: anonymous, a user with no role, Runner, Builder, and a member of the Admin
group who is not a superuser. The Runner has "Shared" shared with them (under
every profile), not "Private"; "fetchesPrivate" is the workflow that fetches
Private's credentials. "Shared" has a Staging configuration besides its Default one.
Runs: each of the Runner and the Builder has one query run and one workflow run.
The table must name every URL of the app: a new URL without a row fails here.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.urls import get_resolver
from django.utils import timezone

from api import tokens
from exports import files as export_files
from exports.models import ExportRun
from integrations.models import (Configuration, ConfigurationProfile, ConnectionCheck, Integration, QueryRun,
                                 SavedQuery, SchemaRead)
from profiles.models import Profile
from tests.conftest import make_user
from workflows.models import Step, Workflow, WorkflowRun

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "norole", "runner", "builder", "admin")
LOGIN = 302  # anonymous: to the login page


def expect(anonymous=LOGIN, norole=403, runner=403, builder=200, admin=200) -> dict[str, int]:
    return {"anonymous": anonymous, "norole": norole, "runner": runner, "builder": builder, "admin": admin}


ALL = expect(norole=200, runner=200)  # every logged-in user
USE = expect(runner=200)  # Runners may use what is shared with them
CONFIGURE = expect()  # Builders and Admins only
NOT_SHARED = expect(runner=404)  # does not exist for a Runner
NOT_ALLOWED = expect(norole=405, runner=405, builder=405, admin=405)
ADMINS = expect(builder=403)  # Admins only
# The HTTP API takes API tokens only: a session cookie is no login there (tests/api has the token rows).
TOKEN_ONLY = expect(anonymous=401, norole=401, runner=401, builder=401, admin=401)
EVERYONE = dict.fromkeys(ROLES, 200)

# (url name, url kwargs as world keys, method, expected by role)
MATRIX: list[tuple[str, dict[str, str], str, dict[str, int]]] = [
    ("integrations:list", {}, "get", USE),
    ("integrations:list", {}, "post", NOT_ALLOWED),
    ("integrations:create", {}, "get", CONFIGURE),
    ("integrations:create", {}, "post", CONFIGURE),  # an empty form: errors beside the fields
    ("integrations:test_connection", {}, "post", CONFIGURE),
    ("integrations:test_connection", {}, "get", NOT_ALLOWED),
    # A check is its author's only (the Builder's here).
    ("integrations:connection_check", {"pk": "builder_check"}, "get", expect(norole=404, runner=404, admin=404)),
    ("integrations:preview_credentials", {}, "post", CONFIGURE),
    ("integrations:detail", {"pk": "shared"}, "get", USE),
    ("integrations:detail", {"pk": "private"}, "get", NOT_SHARED),
    ("integrations:edit", {"pk": "shared"}, "get", CONFIGURE),
    ("integrations:edit", {"pk": "shared"}, "post", CONFIGURE),
    ("integrations:delete", {"pk": "shared"}, "get", CONFIGURE),
    ("integrations:delete", {"pk": "shared"}, "post", expect(builder=302, admin=302)),
    # An empty form: errors beside the fields (no profile ticked).
    ("integrations:configuration_create", {"pk": "shared"}, "get", CONFIGURE),
    ("integrations:configuration_create", {"pk": "shared"}, "post", CONFIGURE),
    ("integrations:configuration_edit", {"pk": "shared", "configuration_id": "shared_staging"}, "get", CONFIGURE),
    ("integrations:configuration_edit", {"pk": "shared", "configuration_id": "shared_staging"}, "post", CONFIGURE),
    # The Default configuration is edited with the integration itself.
    ("integrations:configuration_edit", {"pk": "shared", "configuration_id": "shared_default"}, "get",
     expect(builder=302, admin=302)),
    # Another integration's configuration does not exist under this one.
    ("integrations:configuration_edit", {"pk": "shared", "configuration_id": "private_default"}, "get",
     expect(builder=404, admin=404)),
    ("integrations:configuration_delete", {"pk": "shared", "configuration_id": "shared_staging"}, "get", CONFIGURE),
    ("integrations:configuration_delete", {"pk": "shared", "configuration_id": "shared_staging"}, "post",
     expect(builder=302, admin=302)),
    # The Default configuration cannot be deleted on its own.
    ("integrations:configuration_delete", {"pk": "shared", "configuration_id": "shared_default"}, "post",
     expect(builder=404, admin=404)),
    ("integrations:run_query", {"pk": "shared"}, "post", expect(runner=302, builder=302, admin=302)),
    ("integrations:run_query", {"pk": "private"}, "post", expect(runner=404, builder=302, admin=302)),
    ("integrations:run_query", {"pk": "shared"}, "get", NOT_ALLOWED),
    ("integrations:run", {"pk": "shared", "run_id": "runner_query"}, "get", USE),
    ("integrations:run", {"pk": "shared", "run_id": "builder_query"}, "get", NOT_SHARED),
    ("integrations:cancel_run", {"pk": "shared", "run_id": "runner_query"}, "post",
     expect(runner=302, builder=302, admin=302)),
    ("integrations:cancel_run", {"pk": "shared", "run_id": "builder_query"}, "post",
     expect(runner=404, builder=302, admin=302)),
    ("integrations:run_csv", {"pk": "shared", "run_id": "runner_query"}, "get", USE),
    ("integrations:run_csv", {"pk": "shared", "run_id": "builder_query"}, "get", NOT_SHARED),
    ("integrations:run_csv_result", {"pk": "shared", "run_id": "builder_query", "number": "one"}, "get", NOT_SHARED),
    # The console: the schema, drafts and saved queries of what a user may query.
    ("integrations:schema", {"pk": "shared"}, "get", USE),
    ("integrations:schema", {"pk": "private"}, "get", NOT_SHARED),
    ("integrations:refresh_schema", {"pk": "shared"}, "post", USE),
    ("integrations:refresh_schema", {"pk": "private"}, "post", NOT_SHARED),
    ("integrations:refresh_schema", {"pk": "shared"}, "get", NOT_ALLOWED),
    ("integrations:schema_json", {"pk": "shared"}, "get", USE),
    ("integrations:schema_json", {"pk": "private"}, "get", NOT_SHARED),
    ("integrations:save_draft", {"pk": "shared"}, "post", expect(runner=204, builder=204, admin=204)),
    ("integrations:save_draft", {"pk": "private"}, "post", expect(runner=404, builder=204, admin=204)),
    ("integrations:save_draft", {"pk": "shared"}, "get", NOT_ALLOWED),
    ("integrations:saved_queries", {"pk": "shared"}, "get", USE),
    ("integrations:saved_queries", {"pk": "private"}, "get", NOT_SHARED),
    ("integrations:save_query", {"pk": "shared"}, "post", USE),  # an empty form: errors beside the fields
    ("integrations:save_query", {"pk": "private"}, "post", NOT_SHARED),
    ("integrations:save_query", {"pk": "shared"}, "get", NOT_ALLOWED),
    # A shared saved query: its Runners run it, only its author or a Builder changes it.
    ("integrations:saved_query_edit", {"pk": "shared", "saved_id": "builder_saved"}, "get", CONFIGURE),
    ("integrations:saved_query_edit", {"pk": "shared", "saved_id": "builder_saved"}, "post", CONFIGURE),
    ("integrations:saved_query_edit", {"pk": "shared", "saved_id": "runner_saved"}, "get", USE),
    ("integrations:saved_query_edit", {"pk": "shared", "saved_id": "builder_private_saved"}, "get", NOT_SHARED),
    ("integrations:saved_query_delete", {"pk": "shared", "saved_id": "builder_saved"}, "post",
     expect(builder=302, admin=302)),
    ("integrations:saved_query_delete", {"pk": "shared", "saved_id": "runner_saved"}, "post",
     expect(runner=302, builder=302, admin=302)),
    ("integrations:saved_query_delete", {"pk": "shared", "saved_id": "builder_saved"}, "get", NOT_ALLOWED),
    # Exports of a result: started by those who may run the query again, seen (and cancelled,
    # downloaded) by whoever may see the run; a Runner's own only.
    ("exports:start", {"run_id": "runner_query", "number": "one", "fmt": "csv"}, "post",
     expect(runner=302, builder=302, admin=302)),
    ("exports:start", {"run_id": "builder_query", "number": "one", "fmt": "json"}, "post",
     expect(runner=404, builder=302, admin=302)),
    ("exports:start", {"run_id": "runner_query", "number": "one", "fmt": "csv"}, "get", NOT_ALLOWED),
    ("exports:stored_json", {"run_id": "runner_query", "number": "one"}, "get", USE),
    ("exports:stored_json", {"run_id": "builder_query", "number": "one"}, "get", NOT_SHARED),
    ("exports:detail", {"pk": "runner_export"}, "get", USE),
    ("exports:detail", {"pk": "builder_export"}, "get", NOT_SHARED),
    ("exports:download", {"pk": "runner_export"}, "get", USE),
    ("exports:download", {"pk": "builder_export"}, "get", NOT_SHARED),
    ("exports:cancel", {"pk": "runner_export"}, "post", expect(runner=302, builder=302, admin=302)),
    ("exports:cancel", {"pk": "builder_export"}, "post", expect(runner=404, builder=302, admin=302)),
    ("exports:cancel", {"pk": "runner_export"}, "get", NOT_ALLOWED),
    ("workflows:list", {}, "get", USE),
    ("workflows:create", {}, "get", CONFIGURE),
    ("workflows:create", {}, "post", CONFIGURE),
    ("workflows:edit_steps", {}, "post", CONFIGURE),
    ("workflows:edit_params", {}, "post", CONFIGURE),
    ("workflows:schedule_reading", {}, "get", CONFIGURE),
    ("workflows:detail", {"pk": "plain"}, "get", USE),
    # A Runner may not run (or open) a workflow that reads an integration not shared with them.
    ("workflows:detail", {"pk": "fetches_private"}, "get", CONFIGURE),
    ("workflows:edit", {"pk": "plain"}, "get", CONFIGURE),
    ("workflows:edit", {"pk": "plain"}, "post", CONFIGURE),
    ("workflows:delete", {"pk": "plain"}, "get", CONFIGURE),
    ("workflows:delete", {"pk": "plain"}, "post", expect(builder=302, admin=302)),
    ("workflows:run", {"pk": "plain"}, "post", expect(runner=302, builder=302, admin=302)),
    ("workflows:run", {"pk": "fetches_private"}, "post", expect(builder=302, admin=302)),
    ("workflows:run", {"pk": "plain"}, "get", NOT_ALLOWED),
    ("workflows:run_detail", {"pk": "plain", "run_id": "runner_workflow_run"}, "get", USE),
    ("workflows:run_detail", {"pk": "plain", "run_id": "builder_workflow_run"}, "get", NOT_SHARED),
    # Cancel: the runs a user sees (a Runner's own), by anyone who may run workflows.
    ("workflows:cancel_run", {"pk": "plain", "run_id": "runner_workflow_run"}, "post",
     expect(runner=302, builder=302, admin=302)),
    ("workflows:cancel_run", {"pk": "plain", "run_id": "builder_workflow_run"}, "post",
     expect(runner=404, builder=302, admin=302)),
    ("workflows:cancel_run", {"pk": "plain", "run_id": "runner_workflow_run"}, "get", NOT_ALLOWED),
    ("profiles:list", {}, "get", ADMINS),
    ("profiles:list", {}, "post", NOT_ALLOWED),
    ("profiles:create", {}, "get", ADMINS),
    ("profiles:create", {}, "post", ADMINS),  # an empty form: errors beside the fields
    ("profiles:edit", {"pk": "qa"}, "get", ADMINS),
    ("profiles:edit", {"pk": "qa"}, "post", ADMINS),
    ("profiles:delete", {"pk": "qa"}, "get", ADMINS),
    ("profiles:delete", {"pk": "qa"}, "post", expect(builder=403, admin=302)),
    # Staging is used by Shared's Staging configuration: the page says so and keeps it.
    ("profiles:delete", {"pk": "staging"}, "post", ADMINS),
    ("audit:log", {}, "get", ADMINS),
    # Each user's own API tokens; another user's token does not exist for them.
    ("api_tokens:list", {}, "get", ALL),
    ("api_tokens:list", {}, "post", ALL),  # an empty form: errors beside the field
    ("api_tokens:revoke", {"pk": "builder_token"}, "post", expect(norole=404, runner=404, builder=302, admin=404)),
    ("api_tokens:revoke", {"pk": "builder_token"}, "get", NOT_ALLOWED),
    ("api:run_workflow", {"name": "plain_name"}, "post", TOKEN_ONLY),
    ("api:run_workflow", {"name": "plain_name"}, "get", dict.fromkeys(ROLES, 405)),
    ("api:query", {"name": "shared_name"}, "post", TOKEN_ONLY),
    ("api:run", {"run_id": "runner_workflow_api_id"}, "get", TOKEN_ONLY),
    ("api:cancel", {"run_id": "runner_workflow_api_id"}, "post", TOKEN_ONLY),
    ("api:openapi", {}, "get", EVERYONE),
    ("api:not_found", {}, "get", dict.fromkeys(ROLES, 404)),
    ("login", {}, "get", expect(anonymous=200, norole=200, runner=200, builder=200, admin=200)),
    ("logout", {}, "post", expect(anonymous=302, norole=302, runner=302, builder=302, admin=302)),
    ("admin:index", {}, "get", expect(norole=302, runner=302, builder=302)),  # Django's admin: staff only
]


@dataclass
class World:
    ids: dict[str, int | str]
    users: dict[str, object]


@pytest.fixture
def world(django_user_model) -> World:
    users = {
        "norole": django_user_model.objects.create_user("nobody", password="x" * 12),
        "runner": make_user(django_user_model, "rob", "Runner"),
        "builder": make_user(django_user_model, "bea", "Builder"),
        "admin": make_user(django_user_model, "ada", "Admin"),
    }
    assert not users["admin"].is_superuser and users["admin"].groups.filter(name="Admin").exists()
    config = {"host": "db.internal", "port": 5432, "database": "app", "username": "app", "sslmode": "prefer"}
    shared = Integration.objects.create_with_default(name="Shared", kind="postgres", config=config)
    shared.share_with(users["runner"])
    shared_staging = Configuration.objects.create(integration=shared, config={**config, "host": "staging.internal"})
    ConfigurationProfile.objects.create(integration=shared, configuration=shared_staging,
                                        profile=Profile.objects.get(key="staging"))
    plain = Workflow.objects.create(name="plain")
    Step.objects.create(workflow=plain, position=0, name="first", code="return 1")
    fetches_private = Workflow.objects.create(name="fetchesPrivate")
    private = Integration.objects.create_with_default(name="Private", kind="postgres", config=config,
                                                      fetch_credentials=True, credentials_workflow=fetches_private)
    result = {"statement": "select 1", "columns": ["a"], "rows": [[1]], "row_count": 1, "truncated": False,
              "status": "SELECT 1"}
    ids = {
        "shared": shared.pk, "private": private.pk, "shared_staging": shared_staging.pk,
        "shared_default": shared.default_configuration.pk, "private_default": private.default_configuration.pk,
        "plain": plain.pk, "fetches_private": fetches_private.pk,
        "runner_query": QueryRun.objects.create(integration=shared, user=users["runner"], sql="select 1",
                                                status="succeeded", results=[result]).pk,
        "builder_query": QueryRun.objects.create(integration=shared, user=users["builder"], sql="select 1",
                                                 status="succeeded", results=[result]).pk,
        "runner_workflow_run": WorkflowRun.objects.create(workflow=plain, user=users["runner"]).pk,
        "builder_workflow_run": WorkflowRun.objects.create(workflow=plain, user=users["builder"]).pk,
        "builder_check": ConnectionCheck.objects.create(kind="postgres", user=users["builder"]).pk,
        "qa": Profile.objects.create(key="qa", name="QA").pk, "staging": Profile.objects.get(key="staging").pk,
        "one": 1,
        "builder_token": tokens.create(users["builder"], "ci").token.pk,
        "plain_name": "plain", "shared_name": "Shared",
    }
    ids["runner_workflow_api_id"] = f"workflow-{ids['runner_workflow_run']}"
    ids["runner_export"] = finished_export(ids["runner_query"], users["runner"])
    ids["builder_export"] = finished_export(ids["builder_query"], users["builder"])
    ids["csv"], ids["json"] = "csv", "json"
    production = Profile.objects.get(key="production")
    one_table = {"schemas": [{"name": "public", "default": True, "tables": [
        {"name": "t", "kind": "table", "columns": [{"name": "a", "type": "integer", "pk": True}]}]}]}
    for integration in (shared, private):
        SchemaRead.objects.create(integration=integration, profile=production, status="succeeded", schema=one_table)
    ids["builder_saved"] = SavedQuery.objects.create(integration=shared, name="b", text="select 1",
                                                     author=users["builder"], shared=True).pk
    ids["builder_private_saved"] = SavedQuery.objects.create(integration=shared, name="bp", text="select 1",
                                                             author=users["builder"]).pk
    ids["runner_saved"] = SavedQuery.objects.create(integration=shared, name="r", text="select 1",
                                                    author=users["runner"]).pk
    return World(ids, users)


def finished_export(query_run_id: int, user) -> int:
    """A finished CSV export of the run, with its file (1 row)."""
    path, fd = export_files.create(0, "csv")
    with open(fd, "w") as handle:
        handle.write("a\r\n1\r\n")
    return ExportRun.objects.create(query_run_id=query_run_id, user=user, format="csv", status="succeeded",
                                    max_rows=10, rows_written=1, file_path=str(path), size_bytes=6,
                                    expires_at=timezone.now() + timedelta(hours=1)).pk


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name, kwargs, method, expected", MATRIX,
                         ids=[f"{m}-{n}-{'-'.join(k.values())}" for n, k, m, _ in MATRIX])
def test_every_url_method_and_role(client, world, name, kwargs, method, expected, role):
    from django.urls import reverse

    if role != "anonymous":
        client.force_login(world.users[role])
    url = reverse(name, kwargs={key: world.ids[value] for key, value in kwargs.items()})
    data = {"sql": "select 1"} if name == "integrations:run_query" else {}
    response = getattr(client, method)(url, data)
    assert response.status_code == expected[role], f"{role} {method.upper()} {url}"
    if role == "anonymous" and expected[role] == LOGIN:
        assert "/accounts/login/" in response["Location"] or "/admin/login/" in response["Location"]


def test_the_matrix_names_every_url_of_the_app():
    covered = {name for name, *_ in MATRIX}
    resolver = get_resolver()
    for namespace in ("integrations", "exports", "workflows", "profiles", "audit", "api", "api_tokens"):
        names = {f"{namespace}:{p.name}" for p in resolver.namespace_dict[namespace][1].url_patterns}
        assert names <= covered, f"URLs without a row in the matrix: {sorted(names - covered)}"


def test_a_group_admin_is_staff_not_superuser(world):
    assert Group.objects.get(name="Admin") in world.users["admin"].groups.all()
    world.users["admin"].refresh_from_db()
    assert world.users["admin"].is_staff and not world.users["admin"].is_superuser
