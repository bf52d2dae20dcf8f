"""Where an integration's credentials come from: the seam between static and fetched.

A *source* turns an Integration row into ``Credentials`` (plain values, only in
the worker's memory). Static credentials come from the form's values and the
encrypted secrets; fetched ones (a workflow's response rendered into bindings)
plug in here without the kinds or the execution path knowing the difference.
"""
from __future__ import annotations

from typing import Callable, Protocol, TypeVar

from .kinds.base import Credentials
from .models import Integration

T = TypeVar("T")


class CredentialSource(Protocol):
    def resolve(self, integration: Integration, *, refresh: bool = False) -> Credentials: ...


class StaticSource:
    """The values typed into the form; secrets decrypted from the row."""

    def resolve(self, integration: Integration, *, refresh: bool = False) -> Credentials:
        return Credentials(integration.pk, {**integration.config, **integration.secrets()})


def source_for(integration: Integration) -> CredentialSource:
    return StaticSource()


def with_credentials(integration: Integration, use: Callable[[Credentials], T]) -> T:
    """Resolve the integration's credentials and call ``use`` with them."""
    return use(source_for(integration).resolve(integration))
