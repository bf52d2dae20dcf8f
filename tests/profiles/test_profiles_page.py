"""The Profiles page: Admins add, rename and delete profiles; a profile in use is kept, naming its users."""
from __future__ import annotations

import pytest

from integrations.models import ConfigurationProfile, Configuration, Integration
from profiles.models import Profile
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(make_user(django_user_model, "ada", "Admin"))
    return client


def test_production_and_staging_exist_from_the_start(admin_client):
    assert list(Profile.objects.values_list("key", "name")) == [("production", "Production"), ("staging", "Staging")]
    html = admin_client.get("/profiles/").content.decode()
    assert "Production" in html and "Staging" in html and "Add profile" in html


def test_an_admin_adds_a_profile_and_renames_it_but_its_key_stays(admin_client):
    response = admin_client.post("/profiles/new/", {"name": "QA", "key": "qa"}, follow=True)
    assert "Profile “QA” was added." in response.content.decode()
    qa = Profile.objects.get(key="qa")
    response = admin_client.post(f"/profiles/{qa.pk}/", {"name": "Quality", "key": "hacked"}, follow=True)
    assert "Profile “Quality” was saved." in response.content.decode()
    qa.refresh_from_db()
    assert (qa.name, qa.key) == ("Quality", "qa")


@pytest.mark.parametrize("key, message", [
    ("QA", "Use lower-case letters"), ("1qa", "Use lower-case letters"), ("q-a", "Use lower-case letters"),
    ("staging", "A profile with this key already exists."), ("qa_env", "cannot contain “_env”"),
])
def test_a_bad_key_is_refused_beside_the_field(admin_client, key, message):
    response = admin_client.post("/profiles/new/", {"name": "Other", "key": key})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Profile.objects.filter(name="Other").exists()


def test_a_profile_used_by_a_configuration_is_not_deleted_and_the_page_says_which(admin_client):
    staging = Profile.objects.get(key="staging")
    shop = Integration.objects.create_with_default(name="Shop", kind="postgres", config={"host": "db"})
    own = Configuration.objects.create(integration=shop, config={"host": "staging-db"})
    ConfigurationProfile.objects.create(integration=shop, configuration=own, profile=staging)

    page = admin_client.get(f"/profiles/{staging.pk}/delete/").content.decode()
    assert "cannot be deleted while a configuration uses it" in page and "Shop (Staging)" in page
    response = admin_client.post(f"/profiles/{staging.pk}/delete/", follow=True)
    assert "still used and was not deleted" in response.content.decode()
    assert Profile.objects.filter(pk=staging.pk).exists()

    own.delete()
    response = admin_client.post(f"/profiles/{staging.pk}/delete/", follow=True)
    assert "Profile “Staging” was deleted." in response.content.decode()
    assert not Profile.objects.filter(pk=staging.pk).exists()


def test_builders_and_runners_cannot_manage_profiles(client, django_user_model):
    for role in ("Builder", "Runner"):
        client.force_login(make_user(django_user_model, role.lower(), role))
        assert client.get("/profiles/").status_code == 403
        assert client.post("/profiles/new/", {"name": "X", "key": "x"}).status_code == 403
    assert not Profile.objects.filter(key="x").exists()


def test_the_last_profile_is_not_deleted(admin_client):
    Profile.objects.get(key="staging").delete()
    production = Profile.objects.get()
    assert "is the only profile and cannot be deleted" in admin_client.get(f"/profiles/{production.pk}/delete/").content.decode()
    admin_client.post(f"/profiles/{production.pk}/delete/")
    assert Profile.objects.filter(pk=production.pk).exists()


def test_deleting_a_profile_cancels_its_queued_runs_rather_than_run_them_elsewhere(admin_client):
    from integrations.models import QueryRun

    qa = Profile.objects.create(key="qa", name="QA")
    shop = Integration.objects.create_with_default(name="Shop", kind="postgres", config={"host": "db"})
    queued = QueryRun.objects.create(integration=shop, profile=qa, sql="select 1")
    elsewhere = QueryRun.objects.create(integration=shop, profile=Profile.objects.get(key="staging"), sql="select 1")
    admin_client.post(f"/profiles/{qa.pk}/delete/")
    queued.refresh_from_db()
    assert queued.status == "cancelled" and queued.profile is None
    assert queued.error == "Cancelled: its profile QA was deleted before it started."
    elsewhere.refresh_from_db()
    assert elsewhere.status == "queued"
