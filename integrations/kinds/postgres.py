"""PostgreSQL, through psycopg 3.

How a query runs (``Postgres.run_query``):

- The text is split into statements by PostgreSQL's own parser (``pglast``,
  libpg_query), and every statement's result is kept, in order, as psql shows
  them. All statements run in one transaction (psql -c does the same): a
  statement that fails stops the rest and rolls everything back. On a writable
  integration the user's own BEGIN/COMMIT work as in psql. A lone statement
  that returns no rows runs on its own, so VACUUM and friends work.
- Row-returning statements are read through a server-side cursor, at most
  ``max_rows + 1`` rows: memory follows the row cap, not the table.
- Timeouts: the server's ``statement_timeout`` stops each statement, and the
  worker cancels the whole run when it has lasted longer than the integration's
  timeout, whatever the SQL set.
- **Read-only** is the database's doing, not a check of the text: the session
  itself defaults to read-only (``default_transaction_read_only`` in the
  connection's start-up options), so every run is one read-only transaction,
  which nothing inside it can make writable. Statements that end
  that transaction or change read-only settings are refused with a message
  (``read_only_refusal``); other ``SET``s are allowed and last until the run ends.
- **Session reset**: before a pooled connection is reused it is returned to its
  start-up state with ``DISCARD ALL`` (settings, roles, temporary tables,
  prepared statements, advisory locks, LISTENs), which also restores our own
  start-up options (statement timeout, read-only).
- Cells are PostgreSQL's own text for every type but integers and booleans
  (see kinds/cells.py): ``infinity``, BC dates, intervals, ranges, arrays,
  money and bytea are shown as psql prints them and never fail the query.
- libpq fills whatever a connection leaves out from ``PG*`` variables,
  ``~/.pgpass`` and service files. Every connection here passes an explicit
  value for each such keyword, so a binding that rendered empty fails rather
  than logging in with the worker's own settings; the worker's environment
  itself is left alone (the app's own database may need it).
"""
from __future__ import annotations

import json
import os
import re
import select
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any, Iterator

import psycopg
from pglast import parser as pg_parser
from psycopg import errors as pg_errors
from psycopg import pq
from psycopg.adapt import AdaptersMap
from psycopg.types.bool import BoolLoader
from psycopg.types.numeric import IntLoader
from psycopg.types.string import TextLoader

from ..connection_pool import ConnectionPool
from .registry import register
from .base import (BoundRequest, CancelToken, Credentials, Exported, FieldSpec, Kind, QueryCancelled, RowWriter,
                   StageError, StatementResult)
from .deadlines import Deadline, deadlines
from .hosts import checked_address, host_and_port_errors

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

# What PostgreSQL says when it rejects a login (28P01 invalid_password,
# 28000 invalid_authorization_specification). psycopg does not expose the
# SQLSTATE of a failed connection, so the server's words are what we have.
_AUTH_FAILURE = re.compile(
    r"password authentication failed|no password supplied|role \".*\" does not exist"
    r"|is not permitted to log in|pg_hba\.conf rejects|authentication failed",
    re.IGNORECASE,
)
# A password file that does not exist: libpq then skips ~/.pgpass and PGPASSFILE, quietly.
NO_PASSFILE = "/nonexistent/credtool-no-passfile"
# The worker stops a run this long after its timeout if the server has not (e.g. the SQL set
# statement_timeout = 0): the server's own timeout message is the one users should see.
WATCHDOG_GRACE_S = 1.0
# Results of one run together keep at most this many times the row cap.
TOTAL_ROWS_FACTOR = 5
# Rows an export fetches per round trip: memory is one batch, and 2,000 rows cost ~1 ms of
# network per FETCH against ~10 ms of converting and writing them.
EXPORT_BATCH_ROWS = 2000


def _reusable(conn: psycopg.Connection) -> bool:
    return not conn.closed and conn.info.transaction_status == pq.TransactionStatus.IDLE


def _reset_session(conn: psycopg.Connection) -> None:
    # Back to the state the connection had when it was made, start-up options included.
    conn.execute("DISCARD ALL")


# As many idle connections as the worker has threads: fewer made every busy query
# open a new connection (0.3 per query at 16 clients with 4 kept, 0.006 with 8).
_pool: ConnectionPool[psycopg.Connection] = ConnectionPool(
    is_reusable=_reusable, reset=_reset_session, max_idle=int(os.environ.get("CREDTOOL_WORKER_CONCURRENCY") or 8))


@cache
def cell_adapters() -> AdaptersMap:
    """Loaders that give PostgreSQL's own text for every type except integers and booleans."""
    adapters = AdaptersMap(psycopg.adapters)
    for info in psycopg.adapters.types:
        for oid in (info.oid, getattr(info, "array_oid", 0)):
            if oid:
                adapters.register_loader(oid, TextLoader)
    for name in ("int2", "int4", "int8", "oid"):
        adapters.register_loader(name, IntLoader)
    adapters.register_loader("bool", BoolLoader)
    return adapters


# Keywords that reject an empty value, with the value that means "libpq's default".
_NEUTRAL_VALUES = {"sslcertmode": "allow", "min_protocol_version": "3.0", "max_protocol_version": "3.0"}


@cache
def _libpq_defaults() -> dict[str, str]:
    """A value for every connection keyword libpq would otherwise take from a PG* variable.

    The compiled-in default, or empty (which libpq reads as "not set, and do not
    look in the environment"). Left out: ``service`` (an empty service name is an
    error, and with every other keyword explicit a service file has nothing left
    to fill in) and ``require_auth`` (an empty list refuses every method; from
    the environment it could only refuse methods, never supply a credential).
    """
    values = {}
    for option in pq.Conninfo.get_defaults():
        keyword = option.keyword.decode()
        if option.envvar and keyword not in ("service", "require_auth"):
            values[keyword] = _NEUTRAL_VALUES.get(keyword, (option.compiled or b"").decode())
    return values


@register
class Postgres(Kind):
    slug = "postgres"
    label = "PostgreSQL"
    noop_query = ("select split_part(current_setting('server_version'), ' ', 1) || ' as ' || current_user"
                  " || ' on ' || current_database()")
    request_placeholder = "select * from pg_stat_activity"
    # pg_catalog rather than information_schema: it lists what the user may use (USAGE on the
    # schema) with primary keys in one pass, and is several times faster on thousands of tables.
    schema_query = """
        select n.nspname, c.relname, case when c.relkind in ('v', 'm') then 'view' else 'table' end,
               a.attname, format_type(a.atttypid, a.atttypmod), coalesce(a.attnum = any(i.indkey), false),
               n.nspname = current_schema()
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        left join pg_index i on i.indrelid = c.oid and i.indisprimary
        where c.relkind in ('r', 'p', 'v', 'm', 'f')
          and n.nspname not in ('pg_catalog', 'information_schema')
          and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp%'
          and has_schema_privilege(n.oid, 'USAGE')
        order by n.nspname, c.relname, a.attnum"""
    secret_destination_fields = ("host", "port", "username")
    fields = (
        FieldSpec("host", "Host", placeholder="db.internal.example.com",
                  help_text="Host name or IP address of the PostgreSQL server."),
        FieldSpec("port", "Port", type="integer", default=5432),
        FieldSpec("database", "Database", placeholder="app"),
        FieldSpec("username", "Username", placeholder="app_user"),
        FieldSpec("password", "Password", required=False, secret=True),
        FieldSpec("sslmode", "SSL mode", type="choice", default="prefer",
                  choices=tuple((m, m) for m in SSL_MODES),
                  help_text="libpq's sslmode: “prefer” tries TLS first; “verify-full” also checks the certificate and host name."),
    )

    def validate(self, values: dict[str, Any]) -> dict[str, str]:
        return host_and_port_errors(values)

    def connect(self, creds: Credentials, *, connect_timeout: int, timeout_s: int | None = None,
                read_only: bool = False) -> psycopg.Connection:
        values = creds.values
        address, port = checked_address(self, values, default_port=5432, required=("host", "database", "username"))
        # Start-up options are the session's defaults: DISCARD ALL and RESET come back to them.
        options = [f"-c statement_timeout={timeout_s * 1000}"] if timeout_s else []
        if read_only:
            options.append("-c default_transaction_read_only=on")
        try:
            return psycopg.connect(
                **{**_libpq_defaults(),
                   "host": str(values["host"]),
                   "hostaddr": address,  # the address just checked: DNS cannot swap it now
                   "port": str(port),
                   "dbname": str(values["database"]),
                   "user": str(values["username"]),
                   "password": str(values.get("password") or ""),
                   "passfile": NO_PASSFILE,
                   "sslmode": str(values.get("sslmode") or "prefer"),
                   "connect_timeout": str(connect_timeout),
                   "application_name": "credtool",
                   "options": " ".join(options)},
                autocommit=True,  # transactions are ours to open, and DISCARD ALL must run outside one
                prepare_threshold=None,  # DISCARD ALL drops prepared statements psycopg would not know about
                context=cell_adapters(),
            )
        except psycopg.OperationalError as exc:
            message = _connection_message(exc)
            raise StageError("connection", message, auth_failure=bool(_AUTH_FAILURE.search(message))) from None

    def run_query(
        self, creds: Credentials, sql: str | BoundRequest, *, max_rows: int, timeout_s: int, cancel: CancelToken,
        connect_timeout: int = 5, read_only: bool = False,
    ) -> list[StatementResult]:
        statements = split_statements(sql, strict=read_only)
        if read_only:
            for number, statement in enumerate(statements, 1):
                problem = read_only_refusal(statement)
                if problem:
                    raise StageError("query", f"{_which(number, statements)}: {problem}")
        run = _Run(self, creds, statements, max_rows=max_rows, timeout_s=timeout_s, cancel=cancel,
                   connect_timeout=connect_timeout, read_only=read_only)
        try:
            return run.execute(fresh=False)
        except _StaleConnection:
            # The pooled connection had died while idle (server restart, killed
            # session) before anything of the user's was sent: a new one is safe.
            return run.execute(fresh=True)

    def export(
        self, creds: Credentials, statement: str, *, write: RowWriter, max_rows: int, timeout_s: int,
        cancel: CancelToken, connect_timeout: int = 5, read_only: bool = False,
    ) -> Exported:
        """One SELECT's whole result through a server-side cursor, in a read-only transaction
        (always: an export reads, and must not repeat whatever a function in it writes)."""
        statements = split_statements(statement, strict=read_only)
        if len(statements) != 1:
            raise StageError("query", f"an export runs one statement, and this text has {len(statements)}")
        [only] = statements
        problem = read_only_refusal(only) if read_only else ""
        if problem:
            raise StageError("query", f"{_which(1, statements)}: {problem}")
        if not only.streamable:
            raise StageError("query", f"{_which(1, statements)}: only a SELECT (or VALUES, TABLE, WITH … SELECT) "
                                      "can be exported, since exporting runs it again")
        export = _Export(self, creds, only, write=write, max_rows=max_rows, timeout_s=timeout_s, cancel=cancel,
                         connect_timeout=connect_timeout, read_only=read_only)
        try:
            return export.execute(fresh=False)
        except _StaleConnection:
            return export.execute(fresh=True)


# --- Statements -----------------------------------------------------------------------

@dataclass(frozen=True)
class Statement:
    """One statement of the user's text, with PostgreSQL's parse tree (as JSON) when it could be read.

    A statement with bound values (``params``, from a ``BoundRequest``) is sent as ``query``:
    psycopg's ``%s`` where each value goes (PostgreSQL's ``$n`` on the wire), ``%`` doubled."""

    text: str
    tree: dict[str, Any] | None = None
    query: str = ""
    params: tuple[Any, ...] | None = None

    @property
    def sent(self) -> str:
        return self.query or self.text

    @property
    def node(self) -> str:
        return next(iter(self.tree)) if self.tree else ""

    @property
    def streamable(self) -> bool:
        """A plain query that a server-side cursor can read bit by bit (DECLARE accepts it)."""
        if self.node != "SelectStmt":
            return False
        select_stmt = self.tree["SelectStmt"]
        if select_stmt.get("intoClause"):
            return False  # SELECT ... INTO creates a table
        ctes = (select_stmt.get("withClause") or {}).get("ctes", [])
        # WITH x AS (UPDATE ...) SELECT: DECLARE refuses data-modifying WITH.
        return all("SelectStmt" in cte.get("CommonTableExpr", {}).get("ctequery", {"SelectStmt": 0})
                   for cte in ctes)


def split_statements(request: str | BoundRequest, *, strict: bool = False) -> list[Statement]:
    """The statements of ``request`` in order (empty ones dropped).

    Text PostgreSQL's parser cannot read is one statement, sent as it is, so the
    server reports the error in its own words; with ``strict`` (read-only
    integrations) it is refused here instead, since what it would do is unknown.
    A request with bound values must be read: each value goes where the parser
    found its ``$n`` (a parameter), never into a string, a comment or a dollar-quoted body.
    """
    bound = BoundRequest.of(request)
    sql, spans = bound.joined(lambda i: f"${i + 1}")
    try:
        parsed = json.loads(pg_parser.parse_sql_json(sql))
    except pg_parser.ParseError as exc:
        if bound.values:
            raise StageError("query", f"{exc} (a query with bindings must be one PostgreSQL can read, so that "
                                      "each value is sent as a parameter)") from None
        if strict:
            raise StageError("query", f"{exc} (credtool reads every statement of a read-only integration's "
                                      "queries before running them)") from None
        return [Statement(sql.strip())]
    raw = sql.encode()  # the parser's locations count bytes of UTF-8
    seams = {len(sql[:start].encode()): i for i, (start, _) in enumerate(spans)}
    placed = _parameters_placed(parsed, seams, bound)
    statements = []
    for entry in parsed.get("stmts", []):
        start = entry.get("stmt_location", 0)
        length = entry.get("stmt_len", 0) or len(raw) - start
        text = raw[start:start + length].decode().strip()
        if not text:
            continue
        mine = sorted(at for at in placed if start <= at < start + length)
        if not mine:
            statements.append(Statement(text, entry["stmt"]))
            continue
        query, edge = [], start
        for at in mine:
            query.append(raw[edge:at].decode().replace("%", "%%"))
            query.append("%s")
            edge = at + len(f"${placed[at] + 1}".encode())
        query.append(raw[edge:start + length].decode().replace("%", "%%"))
        statements.append(Statement(text, entry["stmt"], query="".join(query).strip(),
                                    params=tuple(_parameter(bound.values[placed[at]]) for at in mine)))
    if not statements:
        raise StageError("query", "there is no statement to run (only comments or semicolons)")
    return statements


def _parameters_placed(parsed: dict[str, Any], seams: dict[int, int], bound: BoundRequest) -> dict[int, int]:
    """{byte offset: binding index} of every bound value the parser read as a parameter; refuses a
    binding it did not (inside quotes or a comment) and a ``$n`` the user wrote themselves."""
    placed: dict[int, int] = {}
    for node in _nodes(parsed, "ParamRef"):
        at = node.get("location", -1)
        if seams.get(at) != node.get("number", 0) - 1:
            raise StageError("query", f"the query has its own placeholder ${node.get('number', '?')}; "
                                      "write each value as a {{…}} binding instead")
        placed[at] = seams[at]
    for i in sorted(set(seams.values()) - set(placed.values())):
        source = bound.sources[i] if i < len(bound.sources) else f"binding {i + 1}"
        raise StageError("query", f"{source} is inside a quoted string, a comment or a dollar-quoted body; "
                                  "write it bare (where item = {{params.item}}): its value is sent as a "
                                  "bound parameter, quoted by PostgreSQL itself")
    return placed


def _parameter(value: Any) -> Any:
    """A bound value as psycopg sends it: text, numbers, booleans and NULL as they are (text typed
    by PostgreSQL from where it goes), a list of scalars as an array, anything else as JSON text."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, list) and value and len({type(v) for v in value}) == 1 and \
            isinstance(value[0], (str, bool, int, float)):
        return value
    return json.dumps(value, ensure_ascii=False)


def _nodes(tree: Any, name: str) -> Iterator[dict[str, Any]]:
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if name in item and isinstance(item[name], dict):
                yield item[name]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


# Settings whose change would make a read-only session writable again.
_READ_ONLY_SETTINGS = {"default_transaction_read_only", "transaction_read_only"}
# Inside our transaction these are harmless: they do not end it.
_ALLOWED_TRANSACTION_STATEMENTS = {"TRANS_STMT_SAVEPOINT", "TRANS_STMT_RELEASE", "TRANS_STMT_ROLLBACK_TO"}


def read_only_refusal(statement: Statement) -> str:
    """Why ``statement`` may not run on a read-only integration ("" if it may).

    Only a message: the read-only transaction is what keeps the data safe. These
    are the statements that would end it, or change read-only settings for later,
    and a user deserves to hear why they do nothing here.
    """
    node, tree = statement.node, (statement.tree or {}).get(statement.node, {})
    if node == "TransactionStmt" and tree.get("kind") not in _ALLOWED_TRANSACTION_STATEMENTS:
        return ("transaction control (BEGIN, COMMIT, ROLLBACK, …) is refused on a read-only integration: "
                "every query runs as one read-only transaction")
    if node == "VariableSetStmt":
        name = str(tree.get("name", "")).lower()
        if tree.get("kind") == "VAR_RESET_ALL" or name in _READ_ONLY_SETTINGS or (
                name in ("transaction", "session characteristics") and _asks_read_write(tree)):
            return "changing read-only settings is refused on a read-only integration"
    if node == "DiscardStmt":
        return "DISCARD is refused on a read-only integration (the session is reset after every query anyway)"
    for call in _function_calls(statement.tree):
        if _function_name(call) == "set_config":
            args = call.get("args") or []
            setting = _constant_text(args[0]) if args else None
            if setting is None or setting.lower() in _READ_ONLY_SETTINGS:
                return ("set_config() of a read-only setting, or of a setting named by an expression, "
                        "is refused on a read-only integration")
    return ""


def _asks_read_write(tree: dict[str, Any]) -> bool:
    for arg in tree.get("args", []):
        definition = arg.get("DefElem", {})
        if definition.get("defname") == "transaction_read_only":
            value = definition.get("arg", {}).get("A_Const", {}).get("ival", {})
            if not value.get("ival"):
                return True
    return False


def _function_calls(tree: Any) -> Iterator[dict[str, Any]]:
    return _nodes(tree, "FuncCall")


def _function_name(call: dict[str, Any]) -> str:
    names = call.get("funcname") or []
    last = names[-1].get("String", {}).get("sval", "") if names else ""
    return last.lower()


def _constant_text(node: dict[str, Any]) -> str | None:
    constant = node.get("A_Const", {})
    return constant.get("sval", {}).get("sval") if "sval" in constant else None


def _which(number: int, statements: list[Statement]) -> str:
    excerpt = " ".join(statements[number - 1].text.split())
    excerpt = excerpt if len(excerpt) <= 60 else excerpt[:57] + "…"
    if len(statements) == 1:
        return f"statement ({excerpt})"
    return f"statement {number} of {len(statements)} ({excerpt})"


# --- Running them ----------------------------------------------------------------------

class _StaleConnection(Exception):
    pass


class _Run:
    def __init__(self, kind: Postgres, creds: Credentials, statements: list[Statement], *, max_rows: int,
                 timeout_s: int, cancel: CancelToken, connect_timeout: int, read_only: bool) -> None:
        self.kind, self.creds, self.statements = kind, creds, statements
        self.max_rows, self.timeout_s, self.cancel = max_rows, timeout_s, cancel
        self.connect_timeout, self.read_only = connect_timeout, read_only

    @contextmanager
    def _session(self, *, fresh: bool) -> Iterator[Any]:
        """A pooled connection (the lease) for this run, checked and cancellable, given back idle:
        what a query and an export share."""
        key = f"{self.creds.fingerprint}:{self.timeout_s}:{int(self.read_only)}"
        connect = lambda: self.kind.connect(  # noqa: E731
            self.creds, connect_timeout=self.connect_timeout, timeout_s=self.timeout_s, read_only=self.read_only)
        with _pool.connection(self.creds.integration_id, key, connect, fresh=fresh) as lease:
            conn = lease.connection
            if lease.reused and _has_pending_input(conn):
                raise _StaleConnection()
            if self.cancel.cancelled:
                raise QueryCancelled()
            self.cancel.on_cancel(conn.cancel_safe)
            try:
                yield lease
            finally:
                self.cancel.on_cancel(None)
                if not conn.closed and conn.info.transaction_status != pq.TransactionStatus.IDLE:
                    try:
                        conn.execute("ROLLBACK")
                    except psycopg.Error:
                        conn.close()

    def execute(self, *, fresh: bool) -> list[StatementResult]:
        with self._session(fresh=fresh) as lease:
            conn = lease.connection
            results: list[StatementResult] = []
            cursors: list[psycopg.ServerCursor] = []
            number = 0  # the statement being run; 0 before the first and at COMMIT
            watchdog = deadlines.schedule(self.timeout_s + WATCHDOG_GRACE_S, conn.cancel_safe)
            try:
                with watchdog:
                    if len(self.statements) == 1 and not self.statements[0].streamable and not self.read_only:
                        number = 1  # on its own: its own implicit transaction, so VACUUM and the like work
                        results.append(self._plain(conn, self.statements[0], self.max_rows))
                    else:
                        # On a read-only integration the session's default makes this transaction read-only.
                        conn.execute("BEGIN")
                        for number, statement in enumerate(self.statements, 1):
                            results.append(self._statement(conn, number, statement, self._budget(results), cursors))
                        if conn.info.transaction_status == pq.TransactionStatus.INTRANS:
                            number = 0
                            conn.execute("COMMIT")  # also closes the cursors: closing them now costs no round trip
                return results
            except psycopg.OperationalError as exc:
                if lease.reused and number == 0 and not results and _connection_gone(conn):
                    raise _StaleConnection() from None  # our BEGIN failed: nothing of the user's was sent
                raise self._failure(exc, number, results, watchdog) from None
            except psycopg.Error as exc:
                raise self._failure(exc, number, results, watchdog) from None
            finally:
                for cursor in cursors:
                    _close_quietly(cursor)

    def _budget(self, results: list[StatementResult]) -> int:
        """Rows the next result may keep: the row cap, within what the run keeps in all."""
        left = self.max_rows * TOTAL_ROWS_FACTOR - sum(len(r.rows) for r in results)
        return max(0, min(self.max_rows, left))

    def _statement(self, conn: psycopg.Connection, number: int, statement: Statement, limit: int,
                   cursors: list[psycopg.ServerCursor]) -> StatementResult:
        if not statement.streamable:
            return self._plain(conn, statement, limit)
        if conn.info.transaction_status == pq.TransactionStatus.IDLE:
            conn.execute("BEGIN")  # the user's COMMIT ended ours; a cursor needs a transaction
        # A server-side cursor reads at most limit + 1 rows, however big the result.
        cursor = conn.cursor(name=f"credtool_{number}")
        cursors.append(cursor)
        cursor.execute(statement.sent, statement.params)
        return _collect(cursor, statement, limit)

    def _plain(self, conn: psycopg.Connection, statement: Statement, limit: int) -> StatementResult:
        with conn.cursor() as cursor:
            cursor.execute(statement.sent, statement.params)
            return _collect(cursor, statement, limit)

    def _failure(self, exc: psycopg.Error, number: int, results: list[StatementResult],
                 watchdog: Deadline) -> Exception:
        if isinstance(exc, pg_errors.QueryCanceled):
            if self.cancel.cancelled:
                return QueryCancelled()
            if watchdog.fired:
                return StageError("query", f"the query ran longer than its timeout ({self.timeout_s} s) "
                                           "and was stopped", results=results)
            text = f"{_error_text(exc)} (the statement timeout is {self.timeout_s} s)"
        elif isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
            text = f"the connection was lost: {_error_text(exc)}"
        else:
            text = _error_text(exc)
        where = _which(number, self.statements) + ": " if number and len(self.statements) > 1 else (
            "COMMIT failed: " if number == 0 and results else "")
        return StageError("query", where + text, results=results)


class _Export(_Run):
    """A query run of one streamable statement whose rows go to ``write`` batch by batch: the same
    pool (and so the same session reset), start-up options, cancel and stale-connection check."""

    def __init__(self, kind: Postgres, creds: Credentials, statement: Statement, *, write: RowWriter,
                 max_rows: int, timeout_s: int, cancel: CancelToken, connect_timeout: int, read_only: bool) -> None:
        super().__init__(kind, creds, [statement], max_rows=max_rows, timeout_s=timeout_s, cancel=cancel,
                         connect_timeout=connect_timeout, read_only=read_only)
        self.write = write

    def execute(self, *, fresh: bool) -> Exported:  # type: ignore[override]
        with self._session(fresh=fresh) as lease:  # the queries' pool, key and session reset
            conn = lease.connection
            # The statement timeout bounds each round trip on the server (DECLARE, every FETCH), and so
            # does the worker's watchdog: a whole export may take longer than one query may.
            watchdog = deadlines.schedule(self.timeout_s + WATCHDOG_GRACE_S, conn.cancel_safe)
            started = False
            try:
                conn.execute("BEGIN READ ONLY")
                started = True
                with conn.cursor(name="credtool_export") as cursor:
                    with watchdog:
                        cursor.execute(self.statements[0].sent, self.statements[0].params)
                    columns = [column.name for column in cursor.description or []]
                    self.write(columns, [])
                    written, truncated = 0, False
                    while True:
                        if self.cancel.cancelled:
                            raise QueryCancelled()
                        wanted = min(EXPORT_BATCH_ROWS, self.max_rows + 1 - written)  # one past the cap: cut?
                        watchdog = deadlines.schedule(self.timeout_s + WATCHDOG_GRACE_S, conn.cancel_safe)
                        with watchdog:
                            batch = cursor.fetchmany(wanted)
                        if written + len(batch) > self.max_rows:
                            batch, truncated = batch[: self.max_rows - written], True
                        if batch:
                            self.write(columns, [list(row) for row in batch])
                            written += len(batch)
                        if truncated or len(batch) < wanted:
                            break
                conn.execute("COMMIT")
                return Exported(columns, written, truncated)
            except psycopg.OperationalError as exc:
                if lease.reused and not started and _connection_gone(conn):
                    raise _StaleConnection() from None  # our BEGIN failed: nothing of the user's was sent
                raise self._failure(exc, 1, [], watchdog) from None
            except psycopg.Error as exc:
                raise self._failure(exc, 1, [], watchdog) from None


def _collect(cursor: psycopg.Cursor, statement: Statement, limit: int) -> StatementResult:
    if cursor.description is None:
        # Not a row-returning statement: report what it did ("UPDATE 3").
        return StatementResult(statement.text, columns=[], rows=[], row_count=max(cursor.rowcount, 0),
                               status=cursor.statusmessage or "")
    columns = [column.name for column in cursor.description]
    fetched = [list(row) for row in cursor.fetchmany(limit + 1)]
    truncated = len(fetched) > limit
    rows = fetched[:limit]
    status = cursor.statusmessage or ""
    if isinstance(cursor, psycopg.ServerCursor):
        # A cursor's own tag is DECLARE's; psql would say how many rows the SELECT gave.
        status = "SELECT" if truncated else f"SELECT {len(rows)}"
    return StatementResult(statement.text, columns=columns, rows=rows, row_count=len(rows), truncated=truncated,
                           status=status)


def _close_quietly(cursor: psycopg.ServerCursor) -> None:
    try:
        cursor.close()
    except psycopg.Error:
        pass


def _connection_gone(conn: psycopg.Connection) -> bool:
    return conn.closed or conn.pgconn.status == pq.ConnStatus.BAD


def _has_pending_input(conn: psycopg.Connection) -> bool:
    """An idle connection with something to read has been told goodbye by the server
    (terminated session, restart): it must not carry the user's statement. No round trip."""
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _error_text(exc: psycopg.Error) -> str:
    return str(exc).strip() or type(exc).__name__


def _connection_message(exc: psycopg.OperationalError) -> str:
    # libpq's text, without its prefixes, on one line.
    text = re.sub(r"^connection failed: ", "", str(exc).strip())
    text = re.sub(r"FATAL:\s+", "", text)
    return " ".join(line.strip() for line in text.splitlines() if line.strip()) or "could not connect"
