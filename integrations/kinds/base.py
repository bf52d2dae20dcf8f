"""What every integration kind declares, and the typed errors it raises."""
from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal

from runs.lifecycle import CancelToken

__all__ = ["CancelToken", "Credentials", "Deadline", "FieldSpec", "Kind", "QueryCancelled", "StageError",
           "StatementResult", "deadlines"]

Stage = Literal["workflow", "binding", "connection", "query"]


class StageError(Exception):
    """An error a user sees, naming the stage of the run that failed.

    ``message`` is shown as is, so it must never contain a secret value.
    """

    def __init__(self, stage: Stage, message: str, *, auth_failure: bool = False,
                 results: list[StatementResult] | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.message = message
        # The database rejected the credentials: a fetched secret may have rotated.
        self.auth_failure = auth_failure
        # The statements that ran before the one that failed (shown above the error).
        self.results = results or []

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
class StatementResult:
    """What one statement of a query gave: rows (capped) with their columns, or a status such as "UPDATE 3"."""

    statement: str
    columns: list[str]
    rows: list[list[Any]]
    # Rows the statement produced (or affected), as far as we read them.
    row_count: int
    truncated: bool = False
    status: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"statement": self.statement, "columns": self.columns, "rows": self.rows,
                "row_count": self.row_count, "truncated": self.truncated, "status": self.status}


class Deadline:
    """A callback due at a time; ``fired`` once it has run, ``cancel()`` before that stops it."""

    def __init__(self, due: float, callback: Callable[[], None]) -> None:
        self.due, self.callback = due, callback
        self.fired = self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __enter__(self) -> Deadline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class Deadlines:
    """One thread for every timeout of this process: a query's costs a heap push, not a thread."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None

    def schedule(self, seconds: float, callback: Callable[[], None]) -> Deadline:
        deadline = Deadline(time.monotonic() + seconds, callback)
        with self._wakeup:
            heapq.heappush(self._heap, (deadline.due, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="deadlines", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is deadline:
                self._wakeup.notify()
        return deadline

    def _loop(self) -> None:
        while True:
            with self._wakeup:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)  # cancelled ones leave as they come up
                wait = self._heap[0][0] - time.monotonic() if self._heap else None
                if wait is None or wait > 0:
                    self._wakeup.wait(timeout=wait)
                    continue
                _, _, due = heapq.heappop(self._heap)
            due.fired = True
            try:
                due.callback()
            except Exception:  # a callback's failure must not stop every other timeout
                pass


deadlines = Deadlines()


@dataclass(frozen=True)
class Credentials:
    """The resolved configuration a kind connects with: plain values, no bindings.

    Lives only in the worker's memory; ``fingerprint`` identifies it without revealing it.
    """

    integration_id: int | None
    values: dict[str, Any] = field(default_factory=dict)
    # Texts to scrub from every message about this connection: the secret fields'
    # values, and what a credentials workflow returned under secret-looking keys.
    hidden: tuple[str, ...] = field(default=(), compare=False)

    @property
    def fingerprint(self) -> str:
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
    # The fields that say where, and as whom, the secrets are sent: a blank secret
    # keeps the stored one only while these are unchanged (see secrets_policy.py).
    secret_destination_fields: ClassVar[tuple[str, ...]] = ()

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

    def destination_text(self, name: str, value: Any) -> str:
        """A destination field's value as compared by ``secrets_policy`` (host names are case-insensitive)."""
        text = "" if value is None else str(value).strip()
        return text.lower() if name == "host" else text

    def validate(self, values: dict[str, Any]) -> dict[str, str]:
        """Kind-specific checks of literal values; returns {field: error message}."""
        return {}

    def test_connection(self, creds: Credentials, *, connect_timeout: int = 5) -> str:
        """Connect and run ``noop_query``; return a message saying "Connected ..." or raise StageError."""
        raise NotImplementedError

    def run_query(
        self, creds: Credentials, sql: str, *, max_rows: int, timeout_s: int, cancel: CancelToken,
        connect_timeout: int = 5, read_only: bool = False,
    ) -> list[StatementResult]:
        """Run every statement of ``sql`` in order, one result each with at most ``max_rows`` rows;
        raise StageError (with the earlier statements' results) or QueryCancelled.

        The whole run ends within ``timeout_s``. ``read_only``: the database itself
        must refuse writes (not a check of the SQL text). The connection the query
        used must carry nothing the query set into the next query, whoever runs it."""
        raise NotImplementedError
