"""Integration kinds. Adding a kind = its own module + one import below (see kinds/base.py).

The imports register the kinds, in this order: the form's Kind select lists them so,
and the first is the default.
"""
from __future__ import annotations

from . import postgres  # noqa: F401,I001
from . import mysql  # noqa: F401
from . import rest  # noqa: F401
from .base import Kind
from .registry import REGISTRY, NotRegistered, choices, get, register

__all__ = ["REGISTRY", "Kind", "NotRegistered", "choices", "get", "register"]
