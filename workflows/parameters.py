"""A workflow's parameters as its steps read them (``params.<name>``): the one rule that turns
typed text into values (pure: stdlib only, no Django; the web form and the HTTP API both use it).

The rule: a parameter's value is the text as typed, unless the parameter's default is valid
JSON; then the typed text is parsed as JSON too (``5`` -> 5, ``{"a": 1}`` -> a dict), and text
that is not JSON is an error for that parameter. A parameter not given takes its default, by
the same rule. "Valid JSON" is strict: ``NaN`` and ``Infinity`` are not JSON (a run's
parameters are stored as JSON, and PostgreSQL refuses them).
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Protocol, Sequence


class HasParameters(Protocol):
    """A workflow, as far as this module cares: ``[{"name": "region", "default": "eu-west-1"}, ...]``."""

    parameters: Sequence[Mapping[str, str]]


class InvalidValues(ValueError):
    """Some values cannot be used; ``errors`` maps each parameter's name to a message for the user."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))
        self.errors = errors


class _NotJSON(ValueError):
    pass


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise _NotJSON(f"{constant} is not JSON")

    try:
        return json.loads(text, parse_constant=refuse)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError; deep nesting recurses
        raise _NotJSON(str(exc)) from exc


def is_json(default: str) -> bool:
    """Whether values of a parameter with this default are parsed as JSON."""
    try:
        _strict_json(default)
    except _NotJSON:
        return False
    return True


def parse_values(workflow: HasParameters, raw: Mapping[str, str]) -> dict[str, Any]:
    """Every parameter of ``workflow`` by name, with its value: from ``raw`` (typed text, by
    parameter name) where given, else from its default; text, or parsed JSON when the default
    is valid JSON. Raises ``InvalidValues`` naming every bad value and every name in ``raw``
    that is not a parameter, so that each error can be shown beside its own input."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for parameter in workflow.parameters:
        name, default = parameter["name"], parameter.get("default", "")
        text = raw.get(name, default)
        if not is_json(default):
            values[name] = text
            continue
        try:
            values[name] = _strict_json(text)
        except _NotJSON:
            errors[name] = ("Not valid JSON (this parameter's default is JSON, so its values are read as JSON): "
                            'type a number, true, false, null, [...], {...} or "text" in double quotes.')
    known = ", ".join(values) or "none"
    for name in raw:
        if name not in values and name not in errors:
            errors[name] = f"There is no parameter “{name}” (parameters: {known})."
    if errors:
        raise InvalidValues(errors)
    return values
