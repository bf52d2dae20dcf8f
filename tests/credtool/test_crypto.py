"""Secrets at rest are Fernet tokens; the key comes from the environment and can rotate."""
from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.test import override_settings

from credtool import crypto
from integrations.models import Configuration, Integration

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_keys():
    crypto._fernet.cache_clear()
    yield
    crypto._fernet.cache_clear()


def stored_blob(configuration: Configuration) -> str:
    with connection.cursor() as cursor:
        cursor.execute("select secrets_encrypted from integrations_configuration where id = %s", [configuration.pk])
        return cursor.fetchone()[0]


def saved_with_secrets(name: str, secrets: dict[str, str]) -> Configuration:
    """The Default configuration of a new integration, holding ``secrets``."""
    return Integration.objects.create_with_default(name=name, kind="postgres", config={},
                                                   secrets=secrets).default_configuration


def test_the_stored_blob_is_a_fernet_token_of_the_configured_key():
    key = Fernet.generate_key().decode()
    with override_settings(ENCRYPTION_KEYS=[key]):
        configuration = saved_with_secrets("i", {"password": "at-rest-secret"})
        blob = stored_blob(configuration)
        assert "at-rest-secret" not in blob
        assert base64.urlsafe_b64decode(blob)[0] == 0x80  # Fernet's version byte
        assert Fernet(key.encode()).decrypt(blob.encode()) == b'{"password": "at-rest-secret"}'


def test_a_wrong_key_is_a_clear_error_not_garbage():
    with override_settings(ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        configuration = saved_with_secrets("i", {"password": "pw"})
    crypto._fernet.cache_clear()
    with override_settings(ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        with pytest.raises(crypto.DecryptionError, match="is CREDTOOL_ENCRYPTION_KEY the key they were saved with"):
            Configuration.objects.get(pk=configuration.pk).secrets()


def test_keys_rotate_old_data_still_decrypts_and_new_data_uses_the_first_key():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(ENCRYPTION_KEYS=[old]):
        before = saved_with_secrets("before", {"password": "old-pw"})
    crypto._fernet.cache_clear()
    with override_settings(ENCRYPTION_KEYS=[new, old]):
        assert Configuration.objects.get(pk=before.pk).secrets() == {"password": "old-pw"}
        after = saved_with_secrets("after", {"password": "new-pw"})
        assert Fernet(new.encode()).decrypt(stored_blob(after).encode()) == b'{"password": "new-pw"}'
        with pytest.raises(Exception):
            Fernet(old.encode()).decrypt(stored_blob(after).encode())
