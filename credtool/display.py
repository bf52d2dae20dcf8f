"""Template filters every app's pages use (``{% load display %}``), registered in settings.TEMPLATES."""
from __future__ import annotations

import json
from typing import Any

from django import template

register = template.Library()


@register.filter
def ms(value: float | None) -> str:
    """Milliseconds for people: "0.8 ms", "412 ms", "3.2 s", "2 min 5 s"."""
    if value is None:
        return ""
    if value < 10:
        return f"{value:.1f} ms"
    if value < 1000:
        return f"{value:.0f} ms"
    seconds = value / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


@register.filter
def epoch_ms(value) -> str:
    """A datetime as milliseconds since the epoch, for the elapsed-time ticker."""
    return "" if value is None else str(int(value.timestamp() * 1000))


@register.filter
def pretty_json(value: Any) -> str:
    """Indented JSON for previews (autoescaped by the template like any text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)
