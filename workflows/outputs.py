"""A step's return value as JSON (pure: no Django; also loaded inside the sandbox).

Conversions: date/datetime/time -> ISO 8601 text; Decimal -> int when integral,
else float; UUID -> text; bytes -> UTF-8 text when it decodes, else base64;
set/frozenset/tuple -> list (sets sorted when their items sort); dict keys ->
text; NaN and infinities -> null (as the reference product does). Anything else
is an error naming the type and where it was found.
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


class OutputError(ValueError):
    pass


def to_json(value: Any, _path: str = "", _depth: int = 0) -> Any:
    if _depth > MAX_DEPTH:
        raise OutputError(f"step output{_path or ''} is nested more than {MAX_DEPTH} levels deep")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
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
    where = f" at {_path}" if _path else ""
    raise OutputError(f"step output{where}: object of type {type(value).__name__} is not JSON serializable")


def _key(key: Any, path: str) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float, decimal.Decimal, uuid.UUID, datetime.date)):
        converted = to_json(key, path)
        return json.dumps(converted) if not isinstance(converted, str) else converted
    raise OutputError(f"step output{' at ' + path if path else ''}: a key of type {type(key).__name__} is not allowed")


def dumps(value: Any) -> str:
    return json.dumps(to_json(value), ensure_ascii=False, separators=(",", ":"))
