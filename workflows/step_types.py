"""What the step editor offers beyond Python steps, provided by an app above this one.

The integrations app provides Integration steps (``provide_integration_steps``
in its ``ready``): the integrations a user may pick, the request editor each
asks for ("sql": **Query**; "http": **Method**, **Path**, **Body**), and how
that editor's fields become the step's stored request and back. How such a
step runs is registered with the runner (``runner.register_step_type``). This
app never imports the integrations app.
"""
from __future__ import annotations

from typing import Any, Protocol

from django.contrib.auth.models import AbstractBaseUser


class IntegrationSteps(Protocol):
    methods: tuple[str, ...]

    def choices(self, user: AbstractBaseUser | None) -> list[tuple[str, str]]:
        """(integration id, label) of the integrations ``user`` may query."""

    def editor(self, integration_id: Any) -> str:
        """"sql" or "http": the request editor of that integration's kind ("" if there is none)."""

    def compose(self, editor: str, fields: dict[str, Any]) -> str:
        """The stored request from the editor's fields (``sql``, or ``method``, ``path`` and ``body``)."""

    def decompose(self, editor: str, request: str) -> dict[str, str]:
        """The editor's fields from a stored request."""

    def problems(self, editor: str, fields: dict[str, Any], parameters: list[str],
                 earlier_steps: list[str]) -> dict[str, str]:
        """{field: message} for a request that cannot run: a malformed binding, a name that is neither
        a parameter nor an earlier step, a body that is not JSON."""


_provided: list[IntegrationSteps] = []


def provide_integration_steps(provider: IntegrationSteps) -> None:
    _provided[:] = [provider]


def integration_steps() -> IntegrationSteps | None:
    return _provided[0] if _provided else None
