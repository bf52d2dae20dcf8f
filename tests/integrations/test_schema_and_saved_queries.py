"""The console's Schema panel (read by a real worker from real PostgreSQL and MariaDB), saved queries
and drafts, through the pages."""
from __future__ import annotations

import html
import json
import re

import pytest

from audit.models import AuditEvent
from integrations.models import QueryDraft, SavedQuery, SchemaRead
from profiles.models import Profile
from tests.conftest import USER_PASSWORD, make_user, wait_for_final

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def big_orders(target_db, orders):
    with target_db.admin() as conn:
        conn.execute("create or replace view big_orders as select * from orders where qty > 4")
        conn.execute("alter view big_orders owner to app_user")


def read_schema(client, integration, profile="production") -> SchemaRead:
    response = client.get(f"/integrations/{integration.pk}/schema/?profile={profile}", HTTP_HX_REQUEST="true")
    assert response.status_code == 200, response.content.decode()[:300]
    return wait_for_final(SchemaRead, SchemaRead.objects.filter(integration=integration).latest("pk").pk, timeout=30)


def tables(schema_json: dict) -> dict[str, dict]:
    return {f"{s['name']}.{t['name']}": t for s in schema_json["schemas"] for t in s["tables"]}


@pytest.mark.usefixtures("celery_worker")
def test_the_panel_reads_the_schema_once_and_refresh_reads_it_again(logged_in_client, integration, big_orders,
                                                                     target_db):
    read = read_schema(logged_in_client, integration)
    assert read.status == "succeeded", read.error
    found = tables(read.schema)
    assert found["public.orders"]["kind"] == "table" and found["public.big_orders"]["kind"] == "view"
    assert [(c["name"], c["type"], c["pk"]) for c in found["public.orders"]["columns"]] == [
        ("id", "integer", True), ("item", "text", False), ("qty", "integer", False)]
    assert read.schema["schemas"][0]["default"] is True
    assert AuditEvent.objects.filter(action="read_schema", object_id=str(integration.pk)).count() == 1

    page = logged_in_client.get(f"/integrations/{integration.pk}/schema/?profile=production").content.decode()
    assert "tables and views" in page and "Refresh schema" in page
    assert f'data-schema-url="/integrations/{integration.pk}/schema.json?profile=production"' in page
    assert SchemaRead.objects.count() == 1  # the first look reads it; later ones use what was read
    completion = logged_in_client.get(f"/integrations/{integration.pk}/schema.json?profile=production").json()
    assert "public.orders" in tables(completion)

    with target_db.admin() as conn:
        conn.execute("create table if not exists added_later (x int)")
        conn.execute("alter table added_later owner to app_user")
    logged_in_client.post(f"/integrations/{integration.pk}/schema/refresh/", {"profile": "production"},
                          HTTP_HX_REQUEST="true")
    again = wait_for_final(SchemaRead, SchemaRead.objects.latest("pk").pk, timeout=30)
    assert again.pk != read.pk and "public.added_later" in tables(again.schema)


@pytest.mark.usefixtures("celery_worker")
def test_mysql_schemas_come_from_information_schema(logged_in_client, mysql_integration, mysql_target):
    read = read_schema(logged_in_client, mysql_integration)
    assert read.status == "succeeded", read.error
    orders = tables(read.schema)[f"{mysql_target.database}.orders"]
    assert orders["columns"][0] == {"name": "id", "type": "int(11)", "pk": True} or orders["columns"][0]["pk"]
    assert [c["name"] for c in orders["columns"]][:3] == ["id", "item", "qty"]


def test_a_runner_reads_the_schema_only_under_the_profiles_shared_with_them(client, django_user_model, integration):
    rita = make_user(django_user_model, "rita", "Runner")
    client.login(username="rita", password=USER_PASSWORD)
    assert client.get(f"/integrations/{integration.pk}/schema.json?profile=production").status_code == 404
    integration.share_with(rita, profiles=[Profile.objects.get(key="staging")])
    assert client.get(f"/integrations/{integration.pk}/schema.json?profile=production").status_code == 404
    assert client.get(f"/integrations/{integration.pk}/schema.json?profile=staging").json() == {
        "schemas": [], "truncated": False}


def test_the_draft_is_kept_per_user_and_comes_back_on_the_next_visit(logged_in_client, client, django_user_model,
                                                                    integration):
    logged_in_client.post(f"/integrations/{integration.pk}/draft/", {"text": "select 'half typed"})
    assert QueryDraft.objects.get().text == "select 'half typed"
    page = logged_in_client.get(f"/integrations/{integration.pk}/").content.decode()
    assert "select &#x27;half typed</textarea>" in page
    make_user(django_user_model, "bob", "Builder")
    client.login(username="bob", password=USER_PASSWORD)
    assert "half typed" not in client.get(f"/integrations/{integration.pk}/").content.decode()


def save(client, integration, name, sql="select 1", **extra):
    data = {"sql": sql, "save-name": name, "save-description": "", "new": "1", **extra}
    return client.post(f"/integrations/{integration.pk}/saved/new/", data, HTTP_HX_REQUEST="true")


def test_save_open_update_and_the_name_taken(logged_in_client, integration):
    chart = {"type": "bar", "x": "item", "y": ["qty"]}
    response = save(logged_in_client, integration, "Top items", "select item, qty from orders order by qty desc",
                    chart=json.dumps(chart))
    assert "Saved query “Top items” was saved." in response.content.decode()
    assert response["HX-Trigger"] == "saved-queries-changed"
    saved = SavedQuery.objects.get()
    assert (saved.text, saved.chart, saved.author.username) == (
        "select item, qty from orders order by qty desc", chart, "alice")

    listed = logged_in_client.get(f"/integrations/{integration.pk}/saved/").content.decode()
    assert f'?saved={saved.pk}">Top items</a>' in listed
    opened = logged_in_client.get(f"/integrations/{integration.pk}/?saved={saved.pk}").content.decode()
    assert "order by qty desc</textarea>" in opened
    shown_chart = re.search(r'data-chart="([^"]*)"', opened)
    assert shown_chart and json.loads(html.unescape(shown_chart.group(1))) == chart
    assert "Update “Top items”" in opened

    taken = save(logged_in_client, integration, "Top items").content.decode()
    assert "There is already a saved query named “Top items”" in taken and SavedQuery.objects.count() == 1

    logged_in_client.post(f"/integrations/{integration.pk}/saved/new/",
                          {"sql": "select 2", "saved": saved.pk, "update": "1", "chart": "not json"},
                          HTTP_HX_REQUEST="true")
    saved.refresh_from_db()
    assert (saved.text, saved.chart) == ("select 2", None)
    assert not save(logged_in_client, integration, "Empty", sql="  ").content.decode().count("was saved")


def test_runners_see_shared_and_their_own_and_change_only_their_own(client, django_user_model, user, integration):
    shared = SavedQuery.objects.create(integration=integration, name="Shared", text="select 1", author=user,
                                       shared=True)
    private = SavedQuery.objects.create(integration=integration, name="Private", text="select 2", author=user)
    rita = make_user(django_user_model, "rita", "Runner")
    integration.share_with(rita)
    client.login(username="rita", password=USER_PASSWORD)
    page = client.get(f"/integrations/{integration.pk}/").content.decode()
    assert "Shared</a>" in page and "Private</a>" not in page
    assert client.get(f"/integrations/{integration.pk}/?saved={private.pk}").status_code == 404
    opened = client.get(f"/integrations/{integration.pk}/?saved={shared.pk}").content.decode()
    assert "select 1</textarea>" in opened and "Update “Shared”" not in opened
    assert client.get(f"/integrations/{integration.pk}/saved/{shared.pk}/").status_code == 403
    assert client.post(f"/integrations/{integration.pk}/saved/{shared.pk}/delete/").status_code == 403
    assert client.post(f"/integrations/{integration.pk}/saved/new/", {
        "sql": "drop table x", "saved": shared.pk, "update": "1"}).status_code == 403
    shared.refresh_from_db()
    assert shared.text == "select 1"

    # Their own: saved, renamed and deleted by them.
    save(client, integration, "Mine")
    mine = SavedQuery.objects.get(name="Mine")
    response = client.post(f"/integrations/{integration.pk}/saved/{mine.pk}/",
                           {"name": "Mine renamed", "description": "", "text": "select 3"})
    assert response.status_code == 302
    assert SavedQuery.objects.get(pk=mine.pk).name == "Mine renamed"
    assert client.post(f"/integrations/{integration.pk}/saved/{mine.pk}/delete/").status_code == 302
    assert not SavedQuery.objects.filter(pk=mine.pk).exists()


def test_drafts_saved_queries_and_the_schema_are_for_sql_integrations(logged_in_client):
    from integrations.models import Integration

    rest = Integration.objects.create_with_default(name="Orders API", kind="rest",
                                                   config={"base_url": "https://api.example.com", "auth": "none"})
    assert logged_in_client.post(f"/integrations/{rest.pk}/draft/", {"text": "GET /"}).status_code == 403
    assert save(logged_in_client, rest, "Nope").status_code == 403
    assert logged_in_client.get(f"/integrations/{rest.pk}/schema.json").status_code == 404
    assert "Save query" not in logged_in_client.get(f"/integrations/{rest.pk}/").content.decode()
