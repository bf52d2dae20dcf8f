"""The registry of integration kinds: kinds register here; ``kinds/__init__.py`` lists them."""
from __future__ import annotations

from .base import Kind

REGISTRY: dict[str, Kind] = {}


class NotRegistered(KeyError):
    pass


def register(cls: type[Kind]) -> type[Kind]:
    if cls.slug in REGISTRY:
        raise ValueError(f"integration kind {cls.slug!r} registered twice")
    REGISTRY[cls.slug] = cls()
    return cls


def get(slug: str) -> Kind:
    try:
        return REGISTRY[slug]
    except KeyError:
        raise NotRegistered(f"unknown integration kind {slug!r}") from None


def choices() -> list[tuple[str, str]]:
    return [(slug, kind.label) for slug, kind in REGISTRY.items()]
