from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from credtool.masking import MASK, is_secret_key, mask_secrets, mask_text, secret_values


def test_secret_looking_keys_in_any_case_and_position():
    for key in ("password", "DB_PASSWORD", "passwd", "apiKey", "aws_secret_access_key", "Credentials", "TOKEN"):
        assert is_secret_key(key), key
    for key in ("host", "port", "username", "dbname"):
        assert not is_secret_key(key), key


def test_values_under_secret_keys_are_masked_anywhere():
    value = {"host": "db", "password": "pw", "list": [{"apiToken": "t"}, 1], "credentials": {"user": "u", "x": [1]}}
    assert mask_secrets(value) == {"host": "db", "password": MASK, "list": [{"apiToken": MASK}, 1], "credentials": MASK}
    assert value["password"] == "pw"  # the original is untouched


def test_secret_values_are_masked_in_free_text():
    secrets = secret_values({"password": "hunter22", "nested": {"key": ["abcd1234"]}, "short": {"token": "ab"}})
    assert set(secrets) == {"hunter22", "abcd1234", "ab"}
    assert mask_text("login with hunter22 or abcd1234, ab", secrets) == f"login with {MASK} or {MASK}, ab"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["a", "password", "Token", "x_key", "name", "b"]), children, max_size=4),
    max_leaves=25,
)


def no_secret_left(value) -> bool:
    if isinstance(value, dict):
        return all((v in (MASK, None) if is_secret_key(k) else no_secret_left(v)) for k, v in value.items())
    if isinstance(value, list):
        return all(no_secret_left(v) for v in value)
    return True


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_mask_secrets_leaves_no_value_under_a_secret_key(value):
    assert no_secret_left(mask_secrets(value))


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=4, max_size=30), st.text(max_size=50), st.text(max_size=50))
def test_mask_text_removes_every_occurrence(secret, before, after):
    assert secret not in mask_text(before + secret + after + secret, [secret]) or secret in MASK
