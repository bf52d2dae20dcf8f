"""Loaded with ``-p tests.testenv`` before Django's settings are read.

Tests get their own var/ directory (database file, broker folder, keys), so a
developer's ``make run`` and its worker never consume the tests' tasks.
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("CREDTOOL_VAR_DIR", str(ROOT / "var" / "test"))
os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-not-for-production-" + "x" * 20)
os.environ.setdefault("CREDTOOL_LOG_LEVEL", "WARNING")
# Playwright's sync API runs an event loop in the test thread.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
