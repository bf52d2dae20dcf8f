"""Creating and editing integrations through the web form (no worker needed)."""
from __future__ import annotations

import pytest
from django.db import connection

from integrations.models import Integration
from tests.conftest import stored_default

pytestmark = pytest.mark.django_db


def post_new(client, **overrides):
    data = {"kind": "postgres", "name": "Billing DB", "host": "db.example.com", "port": "5432",
            "database": "billing", "username": "app_user", "password": "s3cret-pw!", "sslmode": "prefer",
            "statement_timeout_s": "30"}
    data.update(overrides)
    return client.post("/integrations/new/", data)


def test_new_integration_form_has_the_labelled_fields(logged_in_client):
    page = logged_in_client.get("/integrations/new/").content.decode()
    for label in ("Kind", "Name", "Host", "Port", "Database", "Username", "Password", "SSL mode"):
        assert f">{label}</label>" in page or f">{label}:</label>" in page, label
    assert 'value="prefer" selected' in page
    assert "Test connection" in page and ">Save<" in page


def test_pages_need_a_login(client):
    for url in ("/integrations/", "/integrations/new/", "/workflows/"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_saved_password_is_encrypted_at_rest_and_never_rendered(logged_in_client):
    response = post_new(logged_in_client)
    integration = Integration.objects.get(name="Billing DB")
    assert response.status_code == 302 and response["Location"] == f"/integrations/{integration.pk}/"
    with connection.cursor() as cursor:
        cursor.execute("SELECT config, secrets_encrypted FROM integrations_configuration")
        raw = " ".join(str(col) for row in cursor.fetchall() for col in row)
    assert "s3cret-pw!" not in raw
    assert integration.default_configuration.secrets() == {"password": "s3cret-pw!"}
    for url in (f"/integrations/{integration.pk}/", f"/integrations/{integration.pk}/edit/", "/integrations/"):
        assert "s3cret-pw!" not in logged_in_client.get(url).content.decode()


def test_blank_password_on_edit_keeps_stored_one(logged_in_client):
    post_new(logged_in_client)
    integration = Integration.objects.get()
    response = logged_in_client.post(f"/integrations/{integration.pk}/edit/", {
        "name": "Billing DB", "host": "DB.example.com", "port": "5432", "database": "billing2",
        "username": "app_user", "password": "", "sslmode": "require", "statement_timeout_s": "10"})
    assert response.status_code == 302
    integration.refresh_from_db()
    default = stored_default(integration)
    assert default.config["database"] == "billing2" and default.config["sslmode"] == "require"
    assert default.secrets() == {"password": "s3cret-pw!"}
    assert integration.statement_timeout_s == 10
    assert default.revision == 2


@pytest.mark.parametrize("changed", [{"host": "db2.example.com"}, {"port": "5433"}, {"username": "other_user"}])
def test_a_blank_password_is_not_kept_for_another_destination(logged_in_client, changed):
    post_new(logged_in_client)
    integration = Integration.objects.get()
    data = {"name": "Billing DB", "host": "db.example.com", "port": "5432", "database": "billing",
            "username": "app_user", "password": "", "sslmode": "prefer", "statement_timeout_s": "30", **changed}
    response = logged_in_client.post(f"/integrations/{integration.pk}/edit/", data)
    page = response.content.decode()
    assert response.status_code == 200
    assert "Type the password again: the host, port or username changed" in page
    assert page.index("Type the password again") > page.index('name="password"')  # beside the field
    default = stored_default(integration)
    assert default.config["host"] == "db.example.com" and default.revision == 1
    # Typed again, it saves.
    assert logged_in_client.post(f"/integrations/{integration.pk}/edit/", {**data, "password": "new"}).status_code == 302


def test_invalid_fields_get_errors_beside_them_and_nothing_is_saved(logged_in_client):
    response = post_new(logged_in_client, name="", host="/var/run/postgresql", port="99999")
    page = response.content.decode()
    assert response.status_code == 200
    assert "This field is required." in page
    assert "Enter a host name or IP address" in page
    assert "Enter a port between 1 and 65535." in page
    assert Integration.objects.count() == 0
    # What the user typed is kept, except the password.
    assert 'value="/var/run/postgresql"' in page
    assert "s3cret-pw!" not in page


def test_duplicate_name_is_refused(logged_in_client):
    post_new(logged_in_client)
    response = post_new(logged_in_client, name="billing db")
    assert "An integration with this name already exists." in response.content.decode()
    assert Integration.objects.count() == 1


def test_delete_asks_then_deletes(logged_in_client):
    post_new(logged_in_client)
    integration = Integration.objects.get()
    assert "Delete Billing DB?" in logged_in_client.get(f"/integrations/{integration.pk}/delete/").content.decode()
    response = logged_in_client.post(f"/integrations/{integration.pk}/delete/", follow=True)
    assert "was deleted" in response.content.decode()
    assert not Integration.objects.exists()


def test_unknown_kind_falls_back_to_a_known_one(logged_in_client):
    response = logged_in_client.get("/integrations/new/?kind=nosuchkind")
    assert response.status_code == 200
    assert "PostgreSQL connection" in response.content.decode()
