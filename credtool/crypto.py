"""Encryption at rest for stored secrets (authenticated: Fernet, AES-128-CBC + HMAC)."""
from __future__ import annotations

import json
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class DecryptionError(Exception):
    """The stored secrets cannot be read with the configured keys."""


@cache
def _fernet() -> MultiFernet:
    # The first key encrypts; every key decrypts, so operators can rotate keys
    # by prepending a new one and re-saving.
    return MultiFernet([Fernet(key.encode()) for key in settings.ENCRYPTION_KEYS])


def encrypt_json(value: dict[str, Any]) -> str:
    return _fernet().encrypt(json.dumps(value).encode()).decode()


def decrypt_json(token: str) -> dict[str, Any]:
    if not token:
        return {}
    try:
        return json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken:
        raise DecryptionError(
            "stored secrets cannot be decrypted: is CREDTOOL_ENCRYPTION_KEY the key they were saved with?"
        ) from None
