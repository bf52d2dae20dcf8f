"""The one rule for secret-looking keys, and the masking of secret values (pure: stdlib only, no Django).

A key is read as words: ``DB_PASSWORD`` is (db, password), ``apiKey`` is
(api, key), ``x-api-key`` is (x, api, key), ``AWSSecretKey`` is (aws, secret,
key). A key is secret-looking when:

* one of its words is a secret word: password, passwd, passphrase, pass,
  secret(s), token(s), credential(s), creds, authorization, auth, cookie(s),
  dsn, and the run-together apikey, privatekey, secretkey, accesskey;
  ``pwd`` counts only beside another word (``db_pwd``), since a bare ``PWD``
  is a shell's working directory;
* or its last word is ``key`` after another word (``api_key``,
  ``private_key``, ``aws_secret_access_key``), except keys that name records
  rather than secrets (``primary_key``, ``sort_key``, ``public_key``, …). A
  bare ``key`` is not: it is usually an identifier (S3 object keys, key/value
  lists).

and it is not merely *about* a secret: a key whose last word describes one
(``secret_id``, ``secret_name``, ``token_type``, ``password_hint``,
``passwd_hint_shown``, ``access_key_id``, ``token_expires_at``) or whose first
word makes it a flag (``has_password``, ``is_secret``) is shown.

``mask_secrets`` replaces values under secret-looking keys, and with
``hidden`` also every occurrence of those texts anywhere else (other keys,
other steps, messages): a secret copied under a harmless name stays masked.
Texts shorter than ``MIN_MASKED_TEXT_LENGTH`` are not replaced inside other
text, so that a secret "1" or "ab" does not mask every such character.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

__all__ = ["MASK", "MIN_MASKED_TEXT_LENGTH", "is_secret_key", "key_words", "mask_secrets", "mask_text",
           "secret_values"]

MASK = "••••••••"
# Shorter values are not replaced inside free text: masking every "1" or "ab"
# would make any message unreadable while protecting nothing worth guessing.
MIN_MASKED_TEXT_LENGTH = 4

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
SECRET_WORDS = frozenset({
    "password", "passwords", "passwd", "passphrase", "pass", "secret", "secrets", "token", "tokens",
    "credential", "credentials", "creds", "authorization", "auth", "cookie", "cookies", "dsn",
    "apikey", "privatekey", "secretkey", "accesskey",
})
# "xxx_key" is a secret unless xxx says it names a record, not a secret.
RECORD_KEY_QUALIFIERS = frozenset({
    "primary", "foreign", "sort", "partition", "cache", "idempotency", "public", "unique", "object", "lookup",
    "row", "hash", "range", "group", "routing", "dedup", "dedupe", "index", "composite", "natural", "surrogate",
    "map", "dict", "sharding", "shard", "join", "s3", "bucket", "file", "keyboard", "hot",
})
# Last words that make a key metadata about a secret rather than the secret itself.
DESCRIPTOR_WORDS = frozenset({
    "id", "ids", "name", "names", "arn", "type", "types", "hint", "hints", "shown", "set", "length", "len",
    "required", "policy", "expiry", "expires", "expiration", "expired", "at", "updated", "changed", "created",
    "enabled", "disabled", "count", "version", "versions", "url", "uri", "endpoint", "file", "path", "label",
    "description", "present", "exists", "field", "ttl", "age", "rotation", "rotated", "method", "scheme",
    "format", "algorithm", "alg", "kind", "status", "location", "region", "stage", "stages", "prefix",
})
FLAG_WORDS = frozenset({"has", "is", "needs", "requires", "use", "uses", "no"})


@lru_cache(maxsize=4096)
def key_words(name: str) -> tuple[str, ...]:
    """``name`` split into lower-case words at separators, case changes and digits."""
    return tuple(word.lower() for word in _WORD.findall(name))


@lru_cache(maxsize=4096)
def _is_secret_name(name: str) -> bool:
    words = key_words(name)
    if not words:
        return False
    if len(words) > 1 and (words[-1] in DESCRIPTOR_WORDS or words[0] in FLAG_WORDS):
        return False
    if any(word in SECRET_WORDS for word in words) or (len(words) > 1 and "pwd" in words):
        return True
    return len(words) > 1 and words[-1] == "key" and words[-2] not in RECORD_KEY_QUALIFIERS


def is_secret_key(name: object) -> bool:
    """Whether a value under the key ``name`` must be masked. Keys that are not strings never are."""
    return isinstance(name, str) and _is_secret_name(name)


def mask_secrets(value: Any, hidden: Iterable[str] = ()) -> Any:
    """A copy of JSON-like ``value`` with every value under a secret-looking key replaced by ``MASK``,
    and every occurrence of a text in ``hidden`` inside any other string replaced too (``mask_text``).

    Secret-looking keys are found at any depth, inside lists too. The whole
    subtree under such a key becomes ``MASK`` (``{"credentials": {...}}`` ->
    ``{"credentials": MASK}``), except ``null``, which stays ``None``: "there is
    no password" is not a secret, and is the first thing to check when a
    connection fails. Everything else keeps its structure: objects (any
    ``Mapping``) become new dicts, lists and tuples new lists, scalars are
    shared. ``value`` itself is never changed. Nesting depth is not limited by
    Python's recursion limit.
    """
    wanted = _wanted(hidden)

    def copy_of(item: Any) -> Any:
        if isinstance(item, Mapping):
            return {}
        if isinstance(item, (list, tuple)):
            return []
        if wanted and isinstance(item, str):
            return _masked(item, wanted)
        return item

    root = copy_of(value)
    # (original container, its copy): an explicit stack, so deep data cannot raise RecursionError.
    stack: list[tuple[Any, Any]] = [(value, root)] if isinstance(root, (dict, list)) else []
    while stack:
        original, copied = stack.pop()
        if isinstance(original, Mapping):
            for key, item in original.items():
                if is_secret_key(key):
                    copied[key] = None if item is None else MASK
                else:
                    copied[key] = child = copy_of(item)
                    if isinstance(child, (dict, list)):
                        stack.append((item, child))
        else:
            for item in original:
                child = copy_of(item)
                copied.append(child)
                if isinstance(child, (dict, list)):
                    stack.append((item, child))
    return root


def secret_values(value: Any) -> list[str]:
    """The text of every scalar under a secret-looking key in ``value``, for ``mask_text``.

    Under a secret key, every string and number at any depth counts (the whole
    subtree is secret, as in ``mask_secrets``); ``null`` and booleans do not.
    A value with whitespace around it is listed both as is and stripped, since
    free text often shows it stripped. Short values are listed too:
    ``mask_text`` decides what is long enough to mask. Order follows the data;
    duplicates are dropped.
    """
    found: dict[str, None] = {}  # an ordered set

    def add(item: Any) -> None:
        if item is None or isinstance(item, bool):
            return
        if isinstance(item, (str, int, float)):
            text = item if isinstance(item, str) else repr(item) if isinstance(item, float) else _int_text(item)
            found.setdefault(text)
            found.setdefault(text.strip())

    # (item, under a secret key?)
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        item, secret = stack.pop()
        if isinstance(item, Mapping):
            children = [(v, secret or is_secret_key(k)) for k, v in item.items()]
        elif isinstance(item, (list, tuple)):
            children = [(v, secret) for v in item]
        else:
            if secret:
                add(item)
            continue
        stack.extend(reversed(children))  # keep the data's order
    found.pop("", None)
    return list(found)


def _int_text(number: int) -> str:
    try:
        return str(number)
    except ValueError:  # more digits than Python will print: nothing a message could show either
        return ""


def mask_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by ``MASK``.

    Secrets shorter than ``MIN_MASKED_TEXT_LENGTH`` are ignored; numbers are
    accepted and matched in decimal. Overlapping or adjacent occurrences (of one
    secret or several) are masked as one run, so no fragment of a secret is
    left between two masks, and no secret occurs in the result unless it is
    itself part of ``MASK``. Matching is case-sensitive and literal.
    """
    return _masked(text, _wanted(secrets))


def _wanted(secrets: Iterable[str]) -> frozenset[str]:
    wanted: set[str] = set()
    for secret in secrets:
        if isinstance(secret, (int, float)) and not isinstance(secret, bool):
            secret = str(secret)
        if isinstance(secret, str) and len(secret) >= MIN_MASKED_TEXT_LENGTH:
            wanted.add(secret)
    return frozenset(wanted)


def _masked(text: str, wanted: frozenset[str]) -> str:
    if not text or not wanted:
        return text
    # Every occurrence, overlaps included, as [start, end) spans; then merge them.
    spans: list[tuple[int, int]] = []
    for secret in wanted:
        at = text.find(secret)
        while at >= 0:
            spans.append((at, at + len(secret)))
            at = text.find(secret, at + 1)
    if not spans:
        return text
    spans.sort()
    out: list[str] = []
    position = 0
    start, end = spans[0]
    for next_start, next_end in spans[1:]:
        if next_start <= end:
            end = max(end, next_end)
            continue
        out.extend((text[position:start], MASK))
        position, start, end = end, next_start, next_end
    out.extend((text[position:start], MASK, text[end:]))
    return "".join(out)
