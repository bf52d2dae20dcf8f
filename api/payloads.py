"""Reading what a caller sent: the JSON body and ``?wait=``, each refused with a 400 that says why."""
from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from .errors import ApiError

# A JSON number (no sign: a wait is never negative), as any HTTP client writes one.
_SECONDS = re.compile(r"\d+(\.\d+)?([eE][+-]?\d+)?")


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The body as a JSON object (an empty body is ``{}``)."""
    raw = request.body
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw, parse_constant=_refuse_constant)
        storable = _storable(body)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise ApiError(400, f"The body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "The body is nested too deeply.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object.")
    if not storable:
        raise ApiError(400, "The body holds a NUL character or an unpaired surrogate (\\ud800-\\udfff), "
                            "which cannot be stored.")
    return body


def _refuse_constant(name: str) -> Any:
    # Python reads NaN and Infinity; JSON has neither, and PostgreSQL refuses them in stored JSON.
    raise ValueError(f"{name} is not JSON")


def _storable(value: Any) -> bool:
    """Whether every text in ``value`` can be stored: PostgreSQL refuses NUL in text and JSON,
    and neither database takes a string that is not valid UTF-8."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    return True


def storable_text(text: str) -> bool:
    """No NUL (PostgreSQL refuses it even in a lookup) and valid UTF-8."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def only(body: dict[str, Any], allowed: set[str]) -> dict[str, Any]:
    """``body``, if it has no keys but ``allowed`` (a typo must not pass silently)."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, f"Unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                            f"allowed: {', '.join(sorted(allowed))}.")
    return body


def text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, f"{key!r} must be a string.")
    return value


def wait_seconds(request: HttpRequest, default: float) -> float:
    """``?wait=<seconds>``: how long to wait for the run (0 answers at once), at most API_MAX_WAIT_S."""
    raw = request.GET.get("wait")
    if raw is None:
        return default
    if len(raw) > 40 or not _SECONDS.fullmatch(raw) or float(raw) > settings.API_MAX_WAIT_S:
        raise ApiError(400, f"wait must be a number of seconds from 0 to {settings.API_MAX_WAIT_S}.")
    return float(raw)
