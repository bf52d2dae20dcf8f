"""The one rule for secret-looking keys: masking structured output and free text.

Pure module: runs without Django (``-p no:django``).
"""
from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credtool.masking import MASK, is_secret_key, key_words, mask_secrets, mask_text, secret_values

FAST = settings(max_examples=300, deadline=None)


@pytest.mark.parametrize("key", [
    "password", "DB_PASSWORD", "passwd", "pass", "passphrase", "db_pwd", "apiKey", "api_key", "x-api-key",
    "aws_secret_access_key", "SecretString", "Credentials", "credential", "TOKEN", "refreshToken", "privateKey",
    "secret", "private_key", "client_secret", "authorization", "Authorization", "x-auth-token", "AWSSecretKey",
    "access_token", "id_token", "session_token", "dsn", "cookie", "apikey", "signing_key",
])
def test_secret_looking_keys_in_any_case_and_position(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", [
    "host", "port", "username", "user", "dbname", "database", "region", "url", "", "k",
    # Names that only look like secrets: a shell's working directory, metadata about a secret,
    # flags, records' keys, and words that merely contain "key" or "pass".
    "PWD", "passwd_hint_shown", "password_hint", "secret_id", "SecretId", "secret_name", "token_type",
    "access_key_id", "token_expires_at", "has_password", "is_secret", "primary_key", "public_key", "key",
    "key_count", "monkey", "keyboard", "passive", "bypass", "compass", "author", "auth_method",
])
def test_ordinary_keys_are_shown(key):
    assert not is_secret_key(key)


def test_keys_are_read_as_words():
    assert key_words("AWSSecretKey") == ("aws", "secret", "key")
    assert key_words("x-api-key") == ("x", "api", "key")
    assert key_words("DB_PASSWORD2") == ("db", "password", "2")


def test_a_secret_copied_under_another_key_is_masked_by_its_value():
    first = {"password": "hunter2"}
    second = {"leak": first["password"], "note": "the password is hunter2!", "PWD": "/home/app"}
    hidden = secret_values(first) + secret_values(second)
    assert mask_secrets(second, hidden) == {"leak": MASK, "note": f"the password is {MASK}!", "PWD": "/home/app"}


def test_short_values_are_not_masked_everywhere():
    hidden = secret_values({"token": "1", "password": "true"})
    assert mask_secrets({"count": "1", "flag": "true1", "ok": True}, hidden) == {
        "count": "1", "flag": f"{MASK}1", "ok": True}


def test_keys_that_are_not_strings_are_never_secret():
    assert not is_secret_key(1) and not is_secret_key(None)


def test_values_under_secret_keys_are_masked_anywhere():
    value = {"host": "db", "password": "pw", "list": [{"apiToken": "t"}, 1, [{"api_key": 5}]],
             "credentials": {"user": "u", "x": [1]}, "nested": {"deeper": {"SECRET": ["a", "b"]}}}
    assert mask_secrets(value) == {
        "host": "db", "password": MASK, "list": [{"apiToken": MASK}, 1, [{"api_key": MASK}]],
        "credentials": MASK, "nested": {"deeper": {"SECRET": MASK}},
    }


def test_a_missing_secret_stays_visible_as_null():
    assert mask_secrets({"password": None, "token": ""}) == {"password": None, "token": MASK}


def test_masking_copies_and_never_changes_the_original():
    value = {"password": "pw", "list": [{"a": 1}], "t": (1, 2)}
    before = copy.deepcopy(value)
    masked = mask_secrets(value)
    masked["list"][0]["a"] = 2
    assert value == before
    assert masked["t"] == [1, 2]


def test_scalars_pass_through():
    for value in ("password", 1, None, True, 1.5):
        assert mask_secrets(value) == value


def test_very_deep_data_does_not_hit_the_recursion_limit():
    value: Any = {"password": "pw"}
    for _ in range(5_000):
        value = [{"a": value}]
    masked = mask_secrets(value)
    for _ in range(5_000):
        masked = masked[0]["a"]
    assert masked == {"password": MASK}
    assert "pw" in secret_values(value)


def test_secret_values_are_masked_in_free_text():
    output = {"password": "hunter22", "nested": {"api_key": ["abcd1234", 987654]}, "short": {"token": "ab"},
              "host": "db.internal", "has_password": True, "token": None, "apiKey": " padded-secret\n"}
    secrets = secret_values(output)
    assert set(secrets) == {"hunter22", "abcd1234", "987654", "ab", " padded-secret\n", "padded-secret"}
    text = "login with hunter22 or abcd1234 pin 987654 at db.internal, ab; padded-secret; True"
    assert mask_text(text, secrets) == f"login with {MASK} or {MASK} pin {MASK} at db.internal, ab; {MASK}; True"


def test_short_secrets_are_not_masked_in_free_text():
    assert mask_text("a 1 abc abcd", ["1", "abc"]) == "a 1 abc abcd"


def test_overlapping_secrets_leave_no_fragment():
    assert mask_text("xx abcdef yy", ["abcd", "cdef"]) == f"xx {MASK} yy"
    assert mask_text("ababab", ["abab"]) == MASK
    assert mask_text("abcdabcd", ["abcd"]) == MASK  # adjacent occurrences are one run


def test_numbers_are_accepted_as_secrets():
    assert mask_text("port 5432 pin 1234", [5432, 1234.5, True]) == f"port {MASK} pin 1234"


JSON_KEYS = st.sampled_from(["a", "password", "Token", "x_key", "name", "b", "credentials", "host", "monkey", "PWD"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(JSON_KEYS, children, max_size=4),
    max_leaves=25,
)


def structure_without_secrets(value: Any) -> Any:
    """``value`` with what is under secret keys replaced by a marker: what masking must keep."""
    if isinstance(value, dict):
        return {k: ("<secret>" if is_secret_key(k) else structure_without_secrets(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [structure_without_secrets(v) for v in value]
    return value


@FAST
@given(JSON)
def test_mask_secrets_leaves_no_value_under_a_secret_key_and_keeps_the_rest(value):
    masked = mask_secrets(value)
    original_structure = structure_without_secrets(value)

    def check(original: Any, result: Any) -> None:
        if isinstance(original, dict):
            assert isinstance(result, dict) and list(result) == list(original)
            for key, item in original.items():
                if is_secret_key(key):
                    assert result[key] == (None if item is None else MASK)
                else:
                    check(item, result[key])
        elif isinstance(original, list):
            assert isinstance(result, list) and len(result) == len(original)
            for item, masked_item in zip(original, result):
                check(item, masked_item)
        else:
            assert result == original or (result != result and original != original)

    check(value, masked)
    assert structure_without_secrets(value) == original_structure or json.dumps(value) != json.dumps(value)
    assert mask_secrets(masked) == masked or masked != masked  # masking is idempotent


@FAST
@given(JSON, st.text(max_size=10))
def test_no_secret_value_survives_in_a_log_of_the_output(value, separator):
    secrets = secret_values(value)
    log_line = separator.join(["start", *secrets, "end"])
    masked = mask_text(log_line, secrets)
    for secret in secrets:
        if len(secret) >= 4 and secret not in MASK:
            assert secret not in masked


@FAST
@given(st.lists(st.text(min_size=4, max_size=12).filter(lambda s: "•" not in s), min_size=1, max_size=4),
       st.lists(st.text(max_size=20), min_size=1, max_size=6))
def test_mask_text_removes_every_occurrence_of_every_secret(secrets, fillers):
    text = "".join(filler + secrets[i % len(secrets)] for i, filler in enumerate(fillers))
    masked = mask_text(text, secrets)
    for secret in secrets:
        assert secret not in masked


@FAST
@given(st.text(max_size=60).filter(lambda t: "•" not in t), st.lists(st.text(min_size=4, max_size=8), max_size=3))
def test_mask_text_changes_nothing_when_no_secret_occurs(text, secrets):
    if not any(s in text for s in secrets):
        assert mask_text(text, secrets) == text


@FAST
@given(JSON, st.text(min_size=4, max_size=10).filter(lambda t: "•" not in t))
def test_a_secret_value_survives_nowhere_in_masked_output(value, secret):
    """Whatever the structure, once a text is hidden it appears in no string of the masked copy."""
    planted = {"password": secret, "copy": value, "again": [secret, f"x{secret}x"]}
    masked = mask_secrets(planted, secret_values(planted))

    def texts(item: Any):
        if isinstance(item, dict):
            for child in item.values():
                yield from texts(child)
        elif isinstance(item, list):
            for child in item:
                yield from texts(child)
        elif isinstance(item, str):
            yield item

    assert not any(secret in text for text in texts(masked) if secret not in MASK)
