"""The one rule for secret-looking keys, and the masking of secret values (pure: stdlib only, no Django).

A key is secret-looking when its name contains ``pass``, ``pwd``, ``secret``,
``token``, ``key`` or ``credential``, in any case and anywhere in the name:
"password", "DB_PASSWORD", "passwd", "pass", "db_pwd", "apiKey",
"aws_secret_access_key", "x-api-key", "Credentials", "refreshToken".

We mask too much rather than too little. Masking only hides a value from
people reading a run or a log; the values themselves are kept and used, so a
false positive costs a click, a false negative leaks a secret. So:

* "key" matches anywhere, including "monkey", "keyboard" and "key_count";
* "pass" matches anywhere, so a bare "pass" (common next to "user") and
  "passphrase" are caught, at the price of "passive", "compass" and "bypass";
* "pwd" is there for "db_pwd"; it also hides a shell's PWD.

Names we deliberately do not treat as secret: "auth" (would hide "author",
"auth_method"), "session", "cookie", "private": a value that matters under such
a key is usually also under a matching one ("session_token", "private_key").
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MASK", "MIN_MASKED_TEXT_LENGTH", "SECRET_KEY_PATTERN",
           "is_secret_key", "mask_secrets", "mask_text", "secret_values"]

SECRET_KEY_PATTERN = re.compile(r"pass|pwd|secret|token|key|credential", re.IGNORECASE)
MASK = "••••••••"
# Shorter values are not replaced inside free text: masking every "1" or "ab"
# would make any message unreadable while protecting nothing worth guessing.
MIN_MASKED_TEXT_LENGTH = 4


def is_secret_key(name: object) -> bool:
    """Whether a value under the key ``name`` must be masked. Keys that are not strings never are."""
    return isinstance(name, str) and SECRET_KEY_PATTERN.search(name) is not None


def mask_secrets(value: Any) -> Any:
    """A copy of JSON-like ``value`` with every value under a secret-looking key replaced by ``MASK``.

    Secret-looking keys are found at any depth, inside lists too. The whole
    subtree under such a key becomes ``MASK`` (``{"credentials": {...}}`` ->
    ``{"credentials": MASK}``), except ``null``, which stays ``None``: "there is
    no password" is not a secret, and is the first thing to check when a
    connection fails. Everything else keeps its structure: objects (any
    ``Mapping``) become new dicts, lists and tuples new lists, scalars are
    shared. ``value`` itself is never changed. Nesting depth is not limited by
    Python's recursion limit.
    """
    def copy_of(item: Any) -> Any:
        if isinstance(item, Mapping):
            return {}
        if isinstance(item, (list, tuple)):
            return []
        return item

    root = copy_of(value)
    # (original container, its copy): an explicit stack, so deep data cannot raise RecursionError.
    stack: list[tuple[Any, Any]] = [(value, root)] if root is not value else []
    while stack:
        original, copied = stack.pop()
        if isinstance(original, Mapping):
            for key, item in original.items():
                if is_secret_key(key):
                    copied[key] = None if item is None else MASK
                else:
                    copied[key] = child = copy_of(item)
                    if child is not item:
                        stack.append((item, child))
        else:
            for item in original:
                child = copy_of(item)
                copied.append(child)
                if child is not item:
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
    wanted: set[str] = set()
    for secret in secrets:
        if isinstance(secret, (int, float)) and not isinstance(secret, bool):
            secret = str(secret)
        if isinstance(secret, str) and len(secret) >= MIN_MASKED_TEXT_LENGTH:
            wanted.add(secret)
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
