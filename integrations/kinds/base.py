"""What every integration kind declares, and the typed errors it raises."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal

Stage = Literal["workflow", "binding", "connection", "query"]


class StageError(Exception):
    """An error a user sees, naming the stage of the run that failed.

    ``message`` is shown as is, so it must never contain a secret value.
    """

    def __init__(self, stage: Stage, message: str, *, auth_failure: bool = False) -> None:
        super().__init__(message)
        self.stage = stage
        self.message = message
        # The database rejected the credentials: a fetched secret may have rotated.
        self.auth_failure = auth_failure

    def __str__(self) -> str:
        return f"{self.stage.capitalize()} failed: {self.message}"


class QueryCancelled(Exception):
    """The user cancelled the query while it ran."""


@dataclass(frozen=True)
class FieldSpec:
    """One field of a kind's configuration form."""

    name: str
    label: str
    type: Literal["text", "integer", "choice"] = "text"
    required: bool = True
    secret: bool = False
    default: Any = None
    choices: tuple[tuple[str, str], ...] = ()
    help_text: str = ""
    placeholder: str = ""


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[list[Any]]
    # Rows the statement produced (or affected), as far as we read them.
    row_count: int
    truncated: bool = False
    status_message: str = ""


@dataclass
class CancelToken:
    """Lets another thread interrupt a running query."""

    _callback: Callable[[], None] | None = None
    cancelled: bool = False

    def on_cancel(self, callback: Callable[[], None] | None) -> None:
        self._callback = callback

    def cancel(self) -> None:
        self.cancelled = True
        if self._callback is not None:
            self._callback()


@dataclass(frozen=True)
class Credentials:
    """The resolved configuration a kind connects with: plain values, no bindings.

    Lives only in the worker's memory; ``fingerprint`` identifies it without revealing it.
    """

    integration_id: int | None
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        import hashlib
        import json

        blob = json.dumps(self.values, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def __repr__(self) -> str:  # never print values, even in a traceback's locals
        return f"Credentials(integration_id={self.integration_id}, fingerprint={self.fingerprint})"


class Kind:
    """Base class of an integration kind; one module per kind under ``kinds/``."""

    slug: ClassVar[str]
    label: ClassVar[str]
    fields: ClassVar[tuple[FieldSpec, ...]]
    noop_query: ClassVar[str] = "SELECT 1"
    query_language: ClassVar[str] = "SQL"

    @classmethod
    def secret_fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in cls.fields if f.secret)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in cls.fields)

    @classmethod
    def field(cls, name: str) -> FieldSpec:
        for spec in cls.fields:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def validate(self, values: dict[str, Any]) -> dict[str, str]:
        """Kind-specific checks of literal values; returns {field: error message}."""
        return {}

    def test_connection(self, creds: Credentials, *, connect_timeout: int = 5) -> str:
        """Connect and run ``noop_query``; return a message saying "Connected ..." or raise StageError."""
        raise NotImplementedError

    def run_query(
        self, creds: Credentials, sql: str, *, max_rows: int, timeout_s: int, cancel: CancelToken,
        connect_timeout: int = 5, read_only: bool = False,
    ) -> QueryResult:
        """Run ``sql``, returning at most ``max_rows`` rows; raise StageError or QueryCancelled.

        ``read_only``: the database itself must refuse writes (not a check of the SQL text)."""
        raise NotImplementedError
