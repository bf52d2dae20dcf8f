"""A step's return value as JSON (pure: no Django; also loaded inside the sandbox).

Conversions: date/datetime/time -> ISO 8601 text; timedelta -> seconds;
Decimal -> int when integral, else float (a number, as the database meant it,
rather than text); UUID -> text; bytes -> UTF-8 text when it decodes, else
base64; set/frozenset/tuple -> list (sets sorted when their items sort); dict
keys -> text (numbers, booleans, None, UUIDs and dates as json.dumps writes
them); NaN and infinities (a float, or a Decimal too big for one) -> null, as
the reference product does. Anything else, including an int of more than about
4,000 digits, is an ``OutputError`` naming the type and where it was found:
``step output at ["a"][2]: object of type Foo is not JSON serializable``.
"""
from __future__ import annotations

import base64
import datetime
import decimal
import json
import math
import uuid
from typing import Any

MAX_DEPTH = 100
# json.dumps refuses ints over 4,300 digits (sys.int_info.default_max_str_digits);
# 14,000 bits is about 4,214 digits.
MAX_INT_BITS = 14_000


class OutputError(ValueError):
    """A value that cannot be a step's output; the message says what and where."""


def to_json(value: Any, _path: str = "", _depth: int = 0) -> Any:
    """``value`` made of JSON types only (dict, list, str, int, float, bool, None), or OutputError."""
    if _depth > MAX_DEPTH:
        raise OutputError(f"step output{_at(_path)} is nested more than {MAX_DEPTH} levels deep")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            raise OutputError(f"step output{_at(_path)}: an int of {value.bit_length()} bits is too large for JSON")
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None
        if value == value.to_integral_value() and value.adjusted() < 4000:
            return int(value)
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    if isinstance(value, dict):
        return {_key(k, _path): to_json(v, f"{_path}[{json.dumps(str(k))}]", _depth + 1) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        items = list(value)
        try:
            items.sort()
        except TypeError:
            pass
        return [to_json(v, f"{_path}[{i}]", _depth + 1) for i, v in enumerate(items)]
    if isinstance(value, (list, tuple)):
        return [to_json(v, f"{_path}[{i}]", _depth + 1) for i, v in enumerate(value)]
    raise OutputError(f"step output{_at(_path)}: object of type {type(value).__name__} is not JSON serializable")


def _at(path: str) -> str:
    return f" at {path}" if path else ""


def _key(key: Any, path: str) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float, decimal.Decimal, uuid.UUID, datetime.date)):
        converted = to_json(key, path)
        return json.dumps(converted) if not isinstance(converted, str) else converted
    raise OutputError(f"step output{_at(path)}: a dict key of type {type(key).__name__} cannot become JSON text")


def dumps(value: Any) -> str:
    """``value`` as compact JSON text (UTF-8 characters kept)."""
    return json.dumps(to_json(value), ensure_ascii=False, separators=(",", ":"))
