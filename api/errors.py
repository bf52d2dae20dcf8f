"""The one shape of every error under /api/: ``{"error": "<what to do about it>"}`` with a status."""
from __future__ import annotations

from typing import Any

from django.http import JsonResponse


class ApiError(Exception):
    """An answer other than success, with a message for the caller (and the headers it needs,
    e.g. ``Retry-After``). ``extra`` adds keys beside "error" (e.g. "fields" for form errors)."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def response(self) -> JsonResponse:
        response = JsonResponse({"error": self.message, **self.extra}, status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        return response
