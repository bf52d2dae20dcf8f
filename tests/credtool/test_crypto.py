"""Secrets at rest are Fernet tokens; the key comes from the environment and can rotate."""
from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.test import override_settings

from credtool import crypto
from integrations.models import Integration

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_keys():
    crypto._fernet.cache_clear()
    yield
    crypto._fernet.cache_clear()


def stored_blob(integration: Integration) -> str:
    with connection.cursor() as cursor:
        cursor.execute("select secrets_encrypted from integrations_integration where id = %s", [integration.pk])
        return cursor.fetchone()[0]


def test_the_stored_blob_is_a_fernet_token_of_the_configured_key():
    key = Fernet.generate_key().decode()
    with override_settings(ENCRYPTION_KEYS=[key]):
        integration = Integration(name="i", kind="postgres", config={})
        integration.set_secrets({"password": "at-rest-secret"})
        integration.save()
        blob = stored_blob(integration)
        assert "at-rest-secret" not in blob
        assert base64.urlsafe_b64decode(blob)[0] == 0x80  # Fernet's version byte
        assert Fernet(key.encode()).decrypt(blob.encode()) == b'{"password": "at-rest-secret"}'


def test_a_wrong_key_is_a_clear_error_not_garbage():
    with override_settings(ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        integration = Integration(name="i", kind="postgres", config={})
        integration.set_secrets({"password": "pw"})
        integration.save()
    crypto._fernet.cache_clear()
    with override_settings(ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        with pytest.raises(crypto.DecryptionError, match="is CREDTOOL_ENCRYPTION_KEY the key they were saved with"):
            Integration.objects.get(pk=integration.pk).secrets()


def test_keys_rotate_old_data_still_decrypts_and_new_data_uses_the_first_key():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(ENCRYPTION_KEYS=[old]):
        before = Integration(name="before", kind="postgres", config={})
        before.set_secrets({"password": "old-pw"})
        before.save()
    crypto._fernet.cache_clear()
    with override_settings(ENCRYPTION_KEYS=[new, old]):
        assert Integration.objects.get(pk=before.pk).secrets() == {"password": "old-pw"}
        after = Integration(name="after", kind="postgres", config={})
        after.set_secrets({"password": "new-pw"})
        after.save()
        assert Fernet(new.encode()).decrypt(stored_blob(after).encode()) == b'{"password": "new-pw"}'
        with pytest.raises(Exception):
            Fernet(old.encode()).decrypt(stored_blob(after).encode())
