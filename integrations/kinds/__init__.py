"""Integration kinds. Adding a kind = its own module + one import below (see kinds/base.py)."""
from __future__ import annotations

from . import mysql, postgres  # noqa: F401  (the explicit, greppable list of kinds: importing registers them)
from .base import Kind
from .registry import REGISTRY, NotRegistered, choices, get, register

__all__ = ["REGISTRY", "Kind", "NotRegistered", "choices", "get", "register"]
