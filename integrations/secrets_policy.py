"""A stored secret is only ever sent where it was stored for.

A blank secret in the form means "keep the stored one". That is safe only while
the secret still goes to the same place as the same user: otherwise a Builder
could point **Host** at a server of their own, leave **Password** blank, click
**Test connection** and read the stored password off the wire. So a blank
secret keeps (or, on the worker, uses) the stored one only when the kind's
destination fields (``Kind.secret_destination_fields``: host, port and
username for databases; the base URL's origin for REST) are unchanged.
"""
from __future__ import annotations

from typing import Any

from .kinds.base import Kind
from .models import Configuration


def destination(kind: Kind, values: dict[str, Any]) -> tuple[str, ...]:
    """Where, and as whom, ``values`` send the secret: compared as text, host names case-folded."""
    return tuple(kind.destination_text(name, values.get(name)) for name in kind.secret_destination_fields)


def same_destination(kind: Kind, configuration: Configuration, values: dict[str, Any]) -> bool:
    return destination(kind, values) == destination(kind, configuration.config)


def stored_secret_for(kind: Kind, configuration: Configuration, values: dict[str, Any], name: str) -> str | None:
    """The stored secret ``name`` if ``values`` still point where it was stored for, else None."""
    if not same_destination(kind, configuration, values):
        return None
    return configuration.secrets().get(name) or None
