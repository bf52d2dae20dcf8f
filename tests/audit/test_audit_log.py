"""The audit log records who changed or ran what, and logins, without secret values."""
from __future__ import annotations

import pytest

from audit.models import AuditEvent
from integrations.models import Integration
from tests.conftest import USER_PASSWORD

pytestmark = pytest.mark.django_db


def test_changes_name_fields_but_never_secret_values(logged_in_client, user):
    logged_in_client.post("/integrations/new/", {
        "kind": "postgres", "name": "Billing", "host": "db", "port": "5432", "database": "b",
        "username": "u", "password": "pw-do-not-log", "sslmode": "prefer", "statement_timeout_s": "30"})
    integration = Integration.objects.get()
    logged_in_client.post(f"/integrations/{integration.pk}/edit/", {
        "name": "Billing", "host": "db2", "port": "5432", "database": "b", "username": "u",
        "password": "new-pw-do-not-log", "sslmode": "prefer", "statement_timeout_s": "30"})
    logged_in_client.post(f"/integrations/{integration.pk}/delete/")
    events = list(AuditEvent.objects.exclude(action="login").order_by("pk")
                  .values_list("action", "actor_name", "object_repr", "detail"))
    assert [e[0] for e in events] == ["create", "change", "delete"]
    assert all(e[1] == "alice" and e[2] == "Billing" for e in events)
    assert "host" in events[1][3]["fields"] and "password" in events[1][3]["fields"]
    assert "do-not-log" not in str(events)


def test_logins_and_failed_logins_are_recorded(client, user):
    client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    client.post("/accounts/login/", {"username": "alice", "password": USER_PASSWORD})
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", "actor_name"))
    assert actions == [("login_failed", "alice"), ("login", "alice")]
    assert "wrong" not in str(AuditEvent.objects.values_list("detail", flat=True))


def test_logins_are_rate_limited_after_repeated_failures(client, user):
    for _ in range(5):
        client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    response = client.post("/accounts/login/", {"username": "alice", "password": USER_PASSWORD})
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_queries_are_recorded_with_their_sql(logged_in_client):
    integration = Integration.objects.create_with_default(name="T", kind="postgres", config={})
    logged_in_client.post(f"/integrations/{integration.pk}/query/", {"sql": "select 42"})
    event = AuditEvent.objects.get(action="run_query")
    assert event.detail["sql"] == "select 42" and event.object_repr == "T"


def test_the_lockout_counts_the_account_not_its_spelling(client, django_user_model):
    from tests.conftest import make_user

    make_user(django_user_model, "runner2", "Runner")
    for _ in range(5):
        client.post("/accounts/login/", {"username": "runner2", "password": "wrong"})
    fullwidth = "ｒｕｎｎｅｒ２"  # NFKC-normalises to runner2, the name Django logs in with
    response = client.post("/accounts/login/", {"username": fullwidth, "password": USER_PASSWORD})
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_failures_typed_in_another_spelling_count_for_the_account(client, django_user_model):
    from tests.conftest import make_user

    make_user(django_user_model, "runner2", "Runner")
    for _ in range(5):
        client.post("/accounts/login/", {"username": "ｒｕｎｎｅｒ２", "password": "wrong"})
    response = client.post("/accounts/login/", {"username": "runner2", "password": USER_PASSWORD})
    assert "Too many failed logins" in response.content.decode()


def test_a_save_that_changes_nothing_logs_no_fields_and_a_change_logs_only_it(logged_in_client):
    data = {"kind": "postgres", "name": "Billing", "host": "db", "port": "5432", "database": "b",
            "username": "u", "password": "pw-do-not-log", "sslmode": "prefer", "statement_timeout_s": "30"}
    logged_in_client.post("/integrations/new/", data)
    integration = Integration.objects.get()
    unchanged = {**data, "password": ""}
    logged_in_client.post(f"/integrations/{integration.pk}/edit/", unchanged)
    assert AuditEvent.objects.filter(action="change").latest("pk").detail["fields"] == []
    assert Integration.objects.get().default_configuration.revision == 1  # cached credentials stay valid
    logged_in_client.post(f"/integrations/{integration.pk}/edit/", {**unchanged, "database": "b2"})
    assert AuditEvent.objects.filter(action="change").latest("pk").detail["fields"] == ["database"]
    logged_in_client.post(f"/integrations/{integration.pk}/edit/", {**unchanged, "database": "b2",
                                                                  "password": "another-pw"})
    event = AuditEvent.objects.filter(action="change").latest("pk")
    assert event.detail["fields"] == ["password"] and "another-pw" not in str(event.detail)
