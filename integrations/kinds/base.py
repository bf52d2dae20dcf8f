"""The kind contract: what every integration kind declares and does, and the typed errors it raises.

A kind is one module under ``kinds/`` with one class registered with
``@register``. It declares:

- ``slug`` and ``label`` ("MySQL"), and ``fields``: its form fields
  (``FieldSpec``: label, help, required, secret, default), which are also what
  bindings may fill in and what a credentials workflow renders;
- ``secret_destination_fields``: where, and as whom, its secrets are sent (a
  blank secret keeps the stored one only while these stay the same);
- ``editor``: the request editor its page needs, ``"sql"`` (a Query box) or
  ``"http"`` (Method, Path, Body), with ``request_placeholder`` and
  ``request_help``; ``timeout_label`` names the common timeout field;
- ``summary(config)``: the one line lists show;
- ``run_query(...)``: run one request (every statement of a SQL text, or one
  HTTP request) and return one ``StatementResult`` each, rows converted by
  ``cell`` (the shared rule in ``cells.py``; a kind adds only its own types);
  it honours the run's ``CancelToken`` (cancelling on the server), its timeout
  (``deadlines``), ``read_only`` (refused by the server, not by reading the
  text) and resets whatever a request set before its connection is reused;
- ``export(...)``: stream one row-returning statement's whole result (up to
  an export cap, far above the row cap) to a callback in batches, with
  bounded memory, through the same connection, read-only transaction, timeout
  and cancel as ``run_query``; a kind that cannot says so with a StageError;
- ``test_connection``: the base class runs ``noop_query`` through
  ``run_query`` and says "Connected to <label> <first cell>"; a kind overrides
  it only if that cannot work (an HTTP API answers any path).

Everything else applies to every kind through this contract, never per kind:
fetched credentials and their bindings, the credential cache and rotation retry
(a ``StageError`` with ``auth_failure`` makes the worker refetch once),
destination checks (a kind calls ``destinations.check`` for every address it
connects to), session reset, audit, roles, and masking (``Credentials.hidden``).

Adding a kind (the checklist MySQL and REST followed):
1. ``kinds/<name>.py``: the class with the declarations above, ``@register``;
   its driver in requirements.txt, with why in the commit.
2. One import line in ``kinds/__init__.py``.
3. Tests under ``tests/integrations/`` against a real server; the browser test
   of its form; ``make bench`` cases ``<slug>_static`` and ``<slug>_raw``.
Nothing else changes: forms, views, templates, the worker and the audit log
read the declarations.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal

from runs.lifecycle import CancelToken

from .cells import Cell, cell_value

__all__ = ["BoundRequest", "CancelToken", "Credentials", "Exported", "FieldSpec", "Kind", "QueryCancelled",
           "RowWriter", "StageError", "StatementResult"]

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
        # The server rejected the credentials: a fetched secret may have rotated.
        self.auth_failure = auth_failure
        # What ran before the failure (earlier statements, or the refusing response), shown with it.
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
    # text: one line; lines: several ("Name: value" headers); integer; choice; boolean (a checkbox)
    type: Literal["text", "lines", "integer", "choice", "boolean"] = "text"
    required: bool = True
    secret: bool = False
    default: Any = None
    choices: tuple[tuple[str, str], ...] = ()
    help_text: str = ""
    placeholder: str = ""


@dataclass
class StatementResult:
    """What one statement (or one HTTP request) gave: rows (capped) with their columns, a status such
    as "UPDATE 3" or "200 OK", and for HTTP the response itself (status, headers, body, time)."""

    statement: str
    columns: list[str]
    rows: list[list[Any]]
    # Rows the statement produced (or affected), as far as we read them.
    row_count: int
    truncated: bool = False
    status: str = ""
    response: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        data = {"statement": self.statement, "columns": self.columns, "rows": self.rows,
                "row_count": self.row_count, "truncated": self.truncated, "status": self.status}
        if self.response is not None:
            data["response"] = self.response
        return data


# Receives an export's rows batch by batch: the columns (the same each time) and up to a few
# thousand rows of cells. Called at least once, so that a result without rows still has its header.
RowWriter = Callable[[list[str], list[list[Cell]]], None]


@dataclass(frozen=True)
class Exported:
    """What an export wrote: its columns, how many rows, and whether it stopped at the cap."""

    columns: list[str]
    row_count: int
    truncated: bool = False


@dataclass(frozen=True)
class BoundRequest:
    """A request whose values travel apart from its text, as the driver's bound parameters:
    ``pieces[0] values[0] pieces[1] … values[n-1] pieces[n]``.

    An Integration step's ``select qty from orders where item = {{params.item}}`` is
    the pieces ``("select qty from orders where item = ", "")`` and the value of
    ``params.item``: each kind puts its placeholder at the seam (``$1`` for
    PostgreSQL, ``%s`` for MySQL, JSON or URL encoding for REST) and refuses a seam
    where a value cannot go as a value (inside a quoted string or a comment).
    """

    pieces: tuple[str, ...]
    values: tuple[Any, ...] = ()
    # Each value's binding as written ("{{params.item}}"), for messages and for the text a run shows.
    sources: tuple[str, ...] = ()

    @classmethod
    def of(cls, request: str | BoundRequest) -> BoundRequest:
        return request if isinstance(request, BoundRequest) else cls((request,))

    def joined(self, placeholder: Any) -> tuple[str, list[tuple[int, int]]]:
        """The text with ``placeholder(i)`` at seam ``i``, and each placeholder's (start, end) in it."""
        parts, spans, length = [self.pieces[0]], [], len(self.pieces[0])
        for i, piece in enumerate(self.pieces[1:]):
            marker = placeholder(i)
            spans.append((length, length + len(marker)))
            parts.extend((marker, piece))
            length += len(marker) + len(piece)
        return "".join(parts), spans

    @property
    def shown(self) -> str:
        """The request as written, bindings and all: what a run's record says it ran."""
        return self.joined(lambda i: self.sources[i] if i < len(self.sources) else "?")[0]


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
    """Base class of an integration kind; one module per kind under ``kinds/`` (see the module's doc)."""

    slug: ClassVar[str]
    label: ClassVar[str]
    fields: ClassVar[tuple[FieldSpec, ...]]
    # The cheapest real request: what Test connection runs. Its first cell, if any,
    # follows "Connected to <label>" (e.g. the server's version and the user).
    noop_query: ClassVar[str] = "SELECT 1"
    # The fields that say where, and as whom, the secrets are sent: a blank secret
    # keeps the stored one only while these are unchanged (see secrets_policy.py).
    secret_destination_fields: ClassVar[tuple[str, ...]] = ()
    editor: ClassVar[Literal["sql", "http"]] = "sql"
    request_placeholder: ClassVar[str] = "select 1"
    request_help: ClassVar[str] = ""
    timeout_label: ClassVar[str] = "Statement timeout (seconds)"
    # What the Schema panel and completion read (integrations/schema.py): a query run like any
    # other (read-only), one row a column: schema, table, "table" or "view", column, its type,
    # whether it is in the primary key, whether the schema is the session's default. "": none.
    schema_query: ClassVar[str] = ""

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

    def summary(self, config: dict[str, Any]) -> str:
        """One line for lists, e.g. ``app_user@db.internal:5432/app``."""
        if {"host", "database"} <= config.keys():
            return f"{config.get('username', '')}@{config['host']}:{config.get('port', '')}/{config['database']}"
        return ""

    def destination_text(self, name: str, value: Any) -> str:
        """A destination field's value as compared by ``secrets_policy`` (host names are case-insensitive)."""
        text = "" if value is None else str(value).strip()
        return text.lower() if name == "host" else text

    def validate(self, values: dict[str, Any]) -> dict[str, str]:
        """Kind-specific checks of literal values; returns {field: error message}."""
        return {}

    def cell(self, value: Any) -> Cell:
        """A driver's value as a cell; a kind with types of its own extends this."""
        return cell_value(value)

    def test_connection(self, creds: Credentials, *, connect_timeout: int = 5) -> str:
        """Run ``noop_query`` on a fresh, read-only session; "Connected to ..." or StageError."""
        results = self.run_query(creds, self.noop_query, max_rows=1, timeout_s=max(connect_timeout, 10),
                                 cancel=CancelToken(), connect_timeout=connect_timeout, read_only=True)
        first = results[0].rows[0][0] if results and results[0].rows and results[0].rows[0] else None
        return f"Connected to {self.label}" + (f" {first}" if first not in (None, "", 1) else "")

    def run_query(
        self, creds: Credentials, request: str | BoundRequest, *, max_rows: int, timeout_s: int,
        cancel: CancelToken, connect_timeout: int = 5, read_only: bool = False,
    ) -> list[StatementResult]:
        """Run the request (every statement of a SQL text in order, or one HTTP request), one result
        each with at most ``max_rows`` rows; raise StageError (with what ran before the failure) or
        QueryCancelled. A ``BoundRequest``'s values are sent as the driver's parameters, never
        pasted into the text (see ``BoundRequest``).

        The whole run ends within ``timeout_s``. ``read_only``: the server itself must
        refuse writes (not a check of the text). The connection the request used must
        carry nothing the request set into the next one, whoever runs it."""
        raise NotImplementedError

    def export(
        self, creds: Credentials, statement: str, *, write: RowWriter, max_rows: int, timeout_s: int,
        cancel: CancelToken, connect_timeout: int = 5, read_only: bool = False,
    ) -> Exported:
        """Run ``statement`` again, alone, and hand its whole result to ``write`` in batches, at most
        ``max_rows`` rows (``truncated`` then says it stopped there), with memory bounded by a batch,
        not by the result. Only a row-returning read (a SELECT and its kin) is exported: anything
        else is refused with a StageError, since running it again could change data. The same
        connection path as ``run_query`` (destinations, read-only, session reset, cancel, timeout)."""
        raise StageError("query", f"results of {self.label} integrations cannot be exported")
