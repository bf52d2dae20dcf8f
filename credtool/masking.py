"""The one rule for secret-looking keys, and the masking of secret values (pure: no Django).

A key is secret-looking when its name contains password, passwd, secret, token,
key or credential, in any case and anywhere in the name ("DB_PASSWORD",
"apiKey", "aws_secret_access_key", "Credentials"). "key" also matches names
such as "monkey" or "keyboard": masking too much costs a user a click, masking
too little leaks a secret, so we mask too much.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

SECRET_KEY_PATTERN = re.compile(r"pass(?:word|wd)|secret|token|key|credential", re.IGNORECASE)
MASK = "••••••••"
# Shorter values are not replaced inside free text: "1" or "ab" would mask half of any message.
MIN_MASKED_TEXT = 4


def is_secret_key(name: object) -> bool:
    return isinstance(name, str) and bool(SECRET_KEY_PATTERN.search(name))


def mask_secrets(value: Any) -> Any:
    """A copy of JSON-like ``value`` with everything under a secret-looking key replaced by MASK."""
    if isinstance(value, dict):
        return {k: (MASK if is_secret_key(k) and v is not None else mask_secrets(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_secrets(v) for v in value]
    return value


def secret_values(value: Any) -> list[str]:
    """The text of every scalar under a secret-looking key (to mask them in free text)."""
    found: list[str] = []

    def collect_all(v: Any) -> None:
        if isinstance(v, dict):
            for item in v.values():
                collect_all(item)
        elif isinstance(v, (list, tuple)):
            for item in v:
                collect_all(item)
        elif v is not None and not isinstance(v, bool):
            found.append(str(v))

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for k, item in v.items():
                if is_secret_key(k):
                    collect_all(item)
                else:
                    walk(item)
        elif isinstance(v, (list, tuple)):
            for item in v:
                walk(item)

    walk(value)
    return found


def mask_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret (of at least 4 characters) replaced by MASK."""
    unique = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_MASKED_TEXT}
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted(unique, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
