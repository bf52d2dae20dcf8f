"""accounts.permissions reads the user and their permissions in plain SQL: the same rules as Django's
ModelBackend, including for a user who has been deactivated."""
from __future__ import annotations

import pytest

from accounts.permissions import PermissionBackend
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def test_a_builder_has_their_groups_permissions_and_a_deactivated_one_none(django_user_model):
    builder = make_user(django_user_model, "bea", "Builder")
    assert "integrations.change_integration" in PermissionBackend().get_all_permissions(builder)
    builder.is_active = False
    builder.save()
    assert PermissionBackend().get_all_permissions(django_user_model.objects.get(pk=builder.pk)) == set()


def test_a_deactivated_users_session_no_longer_signs_them_in(client, django_user_model):
    builder = make_user(django_user_model, "bea", "Builder")
    client.force_login(builder)
    assert client.get("/integrations/").status_code == 200
    builder.is_active = False
    builder.save()
    response = client.get("/integrations/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
