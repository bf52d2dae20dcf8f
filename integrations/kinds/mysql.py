"""MySQL and MariaDB, through PyMySQL.

Why PyMySQL: it is pure Python (no compiler, no client library: the wheel
installs anywhere Python does, Debian's python3 included), it streams results
with an unbuffered cursor (``SSCursor``), and it takes a socket we opened, so
the connection goes to the address the destination check pinned while TLS
still checks the host's name. Cancel needs nothing from a driver: ``KILL
QUERY`` from a second connection. mysqlclient needs a compiler and the client
headers; mysql-connector-python's wheel is 21 MB of bundled client libraries.
PyMySQL has no call for COM_RESET_CONNECTION, so ``_Connection`` adds one.

How a query runs (``MySQL.run_query``):

- Statements are split with sqlparse and run one at a time, each in its own
  autocommit transaction, as the mysql client does; a statement that fails
  stops the rest and is named.
- Rows are read through an unbuffered cursor, and the server sends at most
  ``max_rows + 1`` of any SELECT (``sql_select_limit``, a session setting: the
  SQL is not rewritten; an explicit LIMIT still wins): memory and time follow
  the row cap, not the table.
- Timeouts: ``max_statement_time`` (MariaDB, every statement) or
  ``max_execution_time`` (MySQL, SELECTs), the socket's read timeout, and the
  worker's deadline, which kills the statement whatever the SQL set.
- Read-only: every statement runs in a transaction started ``READ ONLY`` for
  it, so whatever an earlier statement did to the session (even through
  PREPARE/EXECUTE), the server refuses the writes; the session's own default is
  read-only too (``tx_read_only``). Statements that would change the access
  mode or control transactions are refused with a message (version comments,
  ``/*!50000 ...*/``, are read as the code they are). A stored procedure that
  commits and then writes is the server's business: give read-only
  integrations a database user without write grants as well.
- Bound values (an Integration step's ``{{params.item}}``, a ``BoundRequest``)
  are PyMySQL's ``%s`` parameters: the driver quotes each with the escaping the
  session asks for (it follows NO_BACKSLASH_ESCAPES); a binding inside a quoted
  string, a comment or a name is refused, as sqlparse reads the statement.
- Session reset: COM_RESET_CONNECTION before a connection is reused (user
  variables, temporary tables, session settings, locks), then our settings again.
- Cells are the server's own text (the text protocol's strings), integers as
  numbers; binary strings as ``\\x`` hex.
"""
from __future__ import annotations

import json
import re
import select
import socket
import ssl
from typing import Any, Callable

import pymysql
import sqlparse
from pymysql.constants import FIELD_TYPE

from ..connection_pool import ConnectionPool
from .base import (BoundRequest, CancelToken, Credentials, Exported, FieldSpec, Kind, QueryCancelled, RowWriter,
                   StageError, StatementResult)
from .deadlines import Deadline, deadlines
from .hosts import checked_address, host_and_port_errors
from .registry import register

SSL_MODES = (("disabled", "disabled"), ("preferred", "preferred"), ("required", "required"),
             ("verify-identity", "verify-identity"))
COM_RESET_CONNECTION = 0x1F
ACCESS_DENIED = {1044, 1045, 1698}  # ER_DBACCESS_DENIED_ERROR, ER_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD
INTERRUPTED = {1317, 1969, 3024}  # killed; MariaDB's max_statement_time; MySQL's max_execution_time
CONNECTION_LOST = {2006, 2013, 2055}
WATCHDOG_GRACE_S = 1.0
TOTAL_ROWS_FACTOR = 5
EXPORT_BATCH_ROWS = 2000  # rows an export converts and writes at a time: its memory
# Integers as numbers; everything else stays the server's own text.
_INTEGER_TYPES = (FIELD_TYPE.TINY, FIELD_TYPE.SHORT, FIELD_TYPE.LONG, FIELD_TYPE.LONGLONG, FIELD_TYPE.INT24,
                  FIELD_TYPE.YEAR)
CONVERSIONS: dict[int, Callable[[str], Any]] = {field_type: int for field_type in _INTEGER_TYPES}


class _Connection(pymysql.connections.Connection):
    """PyMySQL's connection, plus the session reset it lacks, and the settings to restore after it."""

    settings_sql = ""

    def reset_session(self) -> None:
        self._execute_command(COM_RESET_CONNECTION, b"")
        self._read_ok_packet()
        if self.settings_sql:
            self.query(self.settings_sql)


_pool: ConnectionPool[_Connection] = ConnectionPool(is_reusable=lambda conn: bool(conn.open),
                                                     reset=lambda conn: conn.reset_session())


@register
class MySQL(Kind):
    slug = "mysql"
    label = "MySQL"
    noop_query = "select concat(version(), ' as ', current_user(), ' on ', coalesce(database(), '(no database)'))"
    secret_destination_fields = ("host", "port", "username")
    request_placeholder = "show tables"
    schema_query = """
        select c.table_schema, c.table_name, if(t.table_type = 'VIEW', 'view', 'table'), c.column_name,
               c.column_type, c.column_key = 'PRI', c.table_schema = database()
        from information_schema.columns c
        join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name
        where c.table_schema not in ('mysql', 'information_schema', 'performance_schema', 'sys')
        order by c.table_schema, c.table_name, c.ordinal_position"""
    fields = (
        FieldSpec("host", "Host", placeholder="mysql.internal.example.com",
                  help_text="Host name or IP address of the MySQL or MariaDB server."),
        FieldSpec("port", "Port", type="integer", default=3306),
        FieldSpec("database", "Database", placeholder="shop"),
        FieldSpec("username", "Username", placeholder="shop_app"),
        FieldSpec("password", "Password", required=False, secret=True),
        FieldSpec("ssl_mode", "SSL mode", type="choice", default="preferred", choices=SSL_MODES,
                  help_text="“preferred” uses TLS when the server offers it; “required” insists on it; "
                            "“verify-identity” also checks the certificate and the host name."),
    )

    def validate(self, values: dict[str, Any]) -> dict[str, str]:
        return host_and_port_errors(values)

    def connect(self, creds: Credentials, *, connect_timeout: int, timeout_s: int | None = None,
                read_only: bool = False, max_rows: int | None = None) -> _Connection:
        values = creds.values
        address, port = checked_address(self, values, default_port=3306, required=("host", "username"))
        host = str(values["host"])
        mode = str(values.get("ssl_mode") or "preferred")
        try:
            sock = socket.create_connection((address, port), timeout=connect_timeout)
        except OSError as exc:
            raise StageError("connection", f"Can't connect to MySQL server on '{host}' ({exc})") from None
        conn = _Connection(
            host=host,  # for TLS: the name the certificate must carry
            port=port, user=str(values["username"]), password=str(values.get("password") or ""),
            database=str(values.get("database") or "") or None, connect_timeout=connect_timeout,
            read_timeout=(timeout_s + WATCHDOG_GRACE_S * 2) if timeout_s else None, write_timeout=connect_timeout * 4,
            charset="utf8mb4", autocommit=True, conv=CONVERSIONS, local_infile=False, client_flag=0,
            ssl=_ssl_context(mode), ssl_disabled=mode == "disabled", defer_connect=True,
            program_name="credtool", read_default_file=None,
        )
        try:
            conn.connect(sock)
            conn.settings_sql = _session_settings(conn.get_server_info(), timeout_s, read_only, max_rows)
            if conn.settings_sql:
                conn.query(conn.settings_sql)
            return conn
        except pymysql.err.MySQLError as exc:
            _close_quietly(conn)
            code, message = _error(exc)
            raise StageError("connection", message, auth_failure=code in ACCESS_DENIED) from None
        except (OSError, ssl.SSLError) as exc:
            _close_quietly(conn)
            raise StageError("connection", f"could not connect to {host}:{port}: {exc}") from None
        except BaseException:
            _close_quietly(conn)
            raise

    def run_query(self, creds: Credentials, sql: str | BoundRequest, *, max_rows: int, timeout_s: int,
                  cancel: CancelToken, connect_timeout: int = 5, read_only: bool = False) -> list[StatementResult]:
        statements = bound_statements(sql)
        if read_only:
            for number, (statement, _) in enumerate(statements, 1):
                problem = read_only_refusal(statement)
                if problem:
                    raise StageError("query", f"{_which(number, [text for text, _ in statements])}: {problem}")
        try:
            return self._run(creds, statements, max_rows, timeout_s, cancel, connect_timeout, read_only, fresh=False)
        except _StaleConnection:
            # The pooled connection had died while idle before anything was sent: a new one is safe.
            return self._run(creds, statements, max_rows, timeout_s, cancel, connect_timeout, read_only, fresh=True)

    def _run(self, creds: Credentials, statements: list[Statement], max_rows: int, timeout_s: int, cancel: CancelToken,
             connect_timeout: int, read_only: bool, *, fresh: bool) -> list[StatementResult]:
        key = f"{creds.fingerprint}:{timeout_s}:{int(read_only)}:{max_rows}"
        connect = lambda: self.connect(creds, connect_timeout=connect_timeout, timeout_s=timeout_s,  # noqa: E731
                                       read_only=read_only, max_rows=max_rows)
        with _pool.connection(creds.integration_id, key, connect, fresh=fresh) as lease:
            conn = lease.connection
            if lease.reused and _has_pending_input(conn):
                raise _StaleConnection()
            if cancel.cancelled:
                raise QueryCancelled()
            kill = _Killer(self, creds, conn.thread_id(), connect_timeout)
            cancel.on_cancel(kill)
            watchdog = deadlines.schedule(timeout_s + WATCHDOG_GRACE_S, kill)
            results: list[StatementResult] = []
            number = 0
            try:
                with watchdog:
                    for number, statement in enumerate(statements, 1):
                        if read_only:
                            conn.query("START TRANSACTION READ ONLY")
                        results.append(self._statement(conn, statement, self._budget(results, max_rows)))
                        if read_only:
                            conn.query("COMMIT")
                return results
            except pymysql.err.MySQLError as exc:
                code, _ = _error(exc)
                if lease.reused and number <= 1 and not results and code in CONNECTION_LOST and not conn.open:
                    raise _StaleConnection() from None
                raise self._failure(exc, number, [text for text, _ in statements], results, cancel, watchdog,
                                    timeout_s) from None
            finally:
                cancel.on_cancel(None)

    def export(self, creds: Credentials, statement: str, *, write: RowWriter, max_rows: int, timeout_s: int,
               cancel: CancelToken, connect_timeout: int = 5, read_only: bool = False) -> Exported:
        """One SELECT's whole result through an unbuffered cursor, in a transaction started READ ONLY
        (always: an export reads). On a connection of its own, made with the export's cap as
        ``sql_select_limit`` and closed after, so no pooled session carries that cap."""
        statements = bound_statements(statement)
        texts = [text for text, _ in statements]
        if len(statements) != 1:
            raise StageError("query", f"an export runs one statement, and this text has {len(statements)}")
        problem = (read_only_refusal(texts[0]) if read_only else "") or _export_refusal(texts[0])
        if problem:
            raise StageError("query", f"{_which(1, texts)}: {problem}")
        if cancel.cancelled:
            raise QueryCancelled()
        conn = self.connect(creds, connect_timeout=connect_timeout, timeout_s=timeout_s, read_only=read_only,
                            max_rows=max_rows)
        kill = _Killer(self, creds, conn.thread_id(), connect_timeout)
        cancel.on_cancel(kill)
        # The server's statement timeout covers the whole SELECT, streaming included: so does the watchdog.
        watchdog = deadlines.schedule(timeout_s + WATCHDOG_GRACE_S, kill)
        try:
            with watchdog:
                conn.query("START TRANSACTION READ ONLY")
                cursor = pymysql.cursors.SSCursor(conn)
                cursor.execute(texts[0])
                columns = [column[0] for column in cursor.description or []]
                write(columns, [])
                written, truncated = 0, False
                while True:
                    if cancel.cancelled:
                        raise QueryCancelled()  # the connection is closed below, unread rows and all
                    wanted = min(EXPORT_BATCH_ROWS, max_rows + 1 - written)
                    batch = cursor.fetchmany(wanted)
                    if written + len(batch) > max_rows:
                        batch, truncated = batch[: max_rows - written], True
                    if batch:
                        write(columns, [[self.cell(value) for value in row] for row in batch])
                        written += len(batch)
                    if truncated or len(batch) < wanted:
                        break
                cursor.close()  # reads what is left: nothing, or the one row past the cap (sql_select_limit)
                conn.query("COMMIT")
            return Exported(columns, written, truncated)
        except pymysql.err.MySQLError as exc:
            raise self._failure(exc, 1, texts, [], cancel, watchdog, timeout_s) from None
        finally:
            cancel.on_cancel(None)
            _close_quietly(conn)

    @staticmethod
    def _budget(results: list[StatementResult], max_rows: int) -> int:
        left = max_rows * TOTAL_ROWS_FACTOR - sum(len(r.rows) for r in results)
        return max(0, min(max_rows, left))

    def _statement(self, conn: _Connection, bound: Statement, limit: int) -> StatementResult:
        statement, args = bound
        cursor = pymysql.cursors.SSCursor(conn)
        try:
            cursor.execute(statement, args)
            if not cursor.description:
                affected = max(cursor.rowcount, 0)
                return StatementResult(statement, columns=[], rows=[], row_count=affected,
                                       status=f"OK, {affected} row{'s' if affected != 1 else ''} affected")
            columns = [column[0] for column in cursor.description]
            fetched = cursor.fetchmany(limit + 1)
            truncated = len(fetched) > limit
            rows = [[self.cell(value) for value in row] for row in fetched[:limit]]
            return StatementResult(statement, columns=columns, rows=rows, row_count=len(rows), truncated=truncated,
                                   status=f"{len(rows)} row{'s' if len(rows) != 1 else ''} in set"
                                   + ("" if not truncated else " (cut)"))
        finally:
            try:
                cursor.close()  # reads what is left of an unbuffered result: at most the cap, see sql_select_limit
            except pymysql.err.MySQLError as exc:
                if _error(exc)[0] not in INTERRUPTED:
                    raise

    @staticmethod
    def _failure(exc: pymysql.err.MySQLError, number: int, statements: list[str], results: list[StatementResult],
                 cancel: CancelToken, watchdog: Deadline, timeout_s: int) -> Exception:
        code, message = _error(exc)
        if code in INTERRUPTED or code in CONNECTION_LOST:
            if cancel.cancelled:
                return QueryCancelled()
            if watchdog.fired or code in (1969, 3024):
                return StageError("query", f"the query ran longer than its timeout ({timeout_s} s) and was stopped",
                                  results=results)
        if code in CONNECTION_LOST:
            message = f"the connection was lost: {message}"
        where = _which(number, statements) + ": " if number and len(statements) > 1 else ""
        return StageError("query", where + message, results=results)


class _StaleConnection(Exception):
    pass


class _Killer:
    """Stops what a connection is running, from another thread and another connection (KILL QUERY)."""

    def __init__(self, kind: MySQL, creds: Credentials, thread_id: int, connect_timeout: int) -> None:
        self.kind, self.creds, self.thread_id, self.connect_timeout = kind, creds, thread_id, connect_timeout

    def __call__(self) -> None:
        try:
            side = self.kind.connect(self.creds, connect_timeout=self.connect_timeout)
        except StageError:
            return  # the statement's own timeouts still apply
        try:
            side.query(f"KILL QUERY {int(self.thread_id)}")
        except pymysql.err.MySQLError:
            pass
        finally:
            _close_quietly(side)


# A statement as sent: its text, and its bound values (None: the text is sent as it is, no %s in it).
Statement = tuple[str, tuple[Any, ...] | None]
_VALUE_MARKER = "__credtool_value_{}__"
_VALUE_MARKER_FOUND = re.compile(r"__credtool_value_(\d+)__")


def bound_statements(request: str | BoundRequest) -> list[Statement]:
    """The statements of ``request``; a bound value goes where sqlparse reads a name of its own
    (a marker put at the seam), as a ``%s`` parameter, with ``%`` doubled elsewhere for PyMySQL."""
    bound = BoundRequest.of(request)
    if not bound.values:
        return [(text, None) for text in split_statements(bound.pieces[0])]
    if any("__credtool_value_" in piece for piece in bound.pieces):
        raise StageError("query", "the text “__credtool_value_” is reserved in queries with bindings")
    text, _ = bound.joined(_VALUE_MARKER.format)
    statements = []
    for statement in split_statements(text):
        query, args = [], []
        for token in sqlparse.parse(statement)[0].flatten():
            found = _VALUE_MARKER_FOUND.search(token.value)
            if found is None:
                query.append(token.value.replace("%", "%%"))
            elif token.ttype in sqlparse.tokens.Name and found.group(0) == token.value:
                query.append("%s")
                args.append(_parameter(bound.values[int(found.group(1))]))
            else:
                index = int(found.group(1))
                source = bound.sources[index] if index < len(bound.sources) else f"binding {index + 1}"
                raise StageError("query", f"{source} is inside a quoted string, a comment or a name; write it "
                                          "bare (where item = {{params.item}}): its value is sent as a bound "
                                          "parameter, quoted by the driver")
        statements.append(("".join(query), tuple(args)))
    return statements


def _parameter(value: Any) -> Any:
    """A bound value as PyMySQL quotes it: scalars as they are, a list of scalars as ``(a, b)``
    (for ``IN {{params.ids}}``), anything else as JSON text."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, list) and value and all(isinstance(v, (str, bool, int, float)) for v in value):
        return tuple(value)
    return json.dumps(value, ensure_ascii=False)


def split_statements(sql: str) -> list[str]:
    """The statements of ``sql`` in order, without empty or comment-only ones."""
    body = sql.strip().rstrip(";").strip()
    if body and ";" not in body:
        return [body]  # one statement: sqlparse costs 0.2-1 ms a statement, most queries are one
    statements = []
    for text in sqlparse.split(sql):
        stripped = text.strip().rstrip(";").strip()
        if stripped and _code_of(stripped).strip():
            statements.append(stripped)
    if not statements:
        raise StageError("query", "there is no statement to run (only comments or semicolons)")
    return statements


_TRANSACTION_CONTROL = re.compile(r"^\s*(BEGIN|START|COMMIT|ROLLBACK|END|XA|SET\s+AUTOCOMMIT)\b", re.IGNORECASE)
_ACCESS_MODE = re.compile(r"\b(READ\s+WRITE|TRANSACTION_READ_ONLY|TX_READ_ONLY|SESSION\s+TRANSACTION|"
                          r"GLOBAL\s+TRANSACTION)\b", re.IGNORECASE)


def read_only_refusal(statement: str) -> str:
    """Why ``statement`` may not run on a read-only integration ("" if it may): only a message, the
    server's read-only transaction keeps the data safe."""
    code = _code_of(statement)
    first = code.lstrip().split(None, 1)[0].upper() if code.strip() else ""
    if _TRANSACTION_CONTROL.match(code) and not code.upper().lstrip().startswith(("ROLLBACK TO", "SAVEPOINT")):
        return ("transaction control (BEGIN, START TRANSACTION, COMMIT, …) is refused on a read-only "
                "integration: its session's transactions are read-only")
    if first == "SET" and _ACCESS_MODE.search(code):
        return "changing the transaction access mode is refused on a read-only integration"
    return ""


_EXPORTABLE_FIRST_WORDS = {"SHOW", "TABLE", "VALUES", "DESC", "DESCRIBE"}


def _export_refusal(statement: str) -> str:
    """Why ``statement`` cannot be exported ("" if it can): only reads that return rows, since an
    export runs the statement again."""
    code = _code_of(statement).strip()
    first = code.split(None, 1)[0].upper() if code else ""
    if first in _EXPORTABLE_FIRST_WORDS:
        return ""
    # get_type looks past WITH to the statement it introduces (WITH … DELETE is a DELETE).
    if sqlparse.parse(code)[0].get_type() == "SELECT" and not re.search(r"\bINTO\b", code, re.IGNORECASE):
        return ""
    return "only a SELECT (or SHOW, TABLE, VALUES) can be exported, since exporting runs it again"


def _code_of(statement: str) -> str:
    """The statement without its comments, except MySQL's version comments (``/*!50000 ...*/``),
    whose content the server runs: those are read as code."""
    code = re.sub(r"/\*!\d*(.*?)\*/", r" \1 ", statement, flags=re.DOTALL)
    return sqlparse.format(code, strip_comments=True) if re.search(r"--|#|/\*", code) else code


def _which(number: int, statements: list[str]) -> str:
    excerpt = " ".join(statements[number - 1].split())
    excerpt = excerpt if len(excerpt) <= 60 else excerpt[:57] + "…"
    return f"statement {number} of {len(statements)} ({excerpt})" if len(statements) > 1 else f"statement ({excerpt})"


def _session_settings(server: str, timeout_s: int | None, read_only: bool, max_rows: int | None) -> str:
    """One SET of what every session starts with: the statement timeout, read-only transactions,
    and at most one row past the cap from any SELECT."""
    mariadb = "mariadb" in server.lower()
    parts = [f"SESSION sql_select_limit = {int(max_rows) + 1}"] if max_rows else []
    if timeout_s:
        parts.append(f"SESSION max_statement_time = {int(timeout_s)}" if mariadb
                     else f"SESSION max_execution_time = {int(timeout_s) * 1000}")
    if read_only:
        parts.append("SESSION tx_read_only = 1" if mariadb else "SESSION transaction_read_only = 1")
    return "SET " + ", ".join(parts) if parts else ""


def _ssl_context(mode: str) -> ssl.SSLContext | None:
    """None for disabled and preferred (PyMySQL's own "preferred": TLS when the server offers it);
    a context for required (encrypted, peer not checked, as the mysql client does) and
    verify-identity (certificate and host name checked); PyMySQL then refuses a server without TLS."""
    if mode in ("disabled", "preferred"):
        return None
    context = ssl.create_default_context()
    if mode == "required":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _error(exc: pymysql.err.MySQLError) -> tuple[int | None, str]:
    """The server's error code and its own words, e.g. ``Access denied for user 'app'@'10.0.0.5' (using password: YES)``."""
    if len(exc.args) >= 2 and isinstance(exc.args[0], int):
        return exc.args[0], str(exc.args[1]).strip() or type(exc).__name__
    return None, str(exc).strip() or type(exc).__name__


def _close_quietly(conn: _Connection) -> None:
    try:
        conn.close()
    except Exception:  # already closed, or the server went away: gone either way
        pass


def _has_pending_input(conn: _Connection) -> bool:
    """An idle connection with something to read has been told goodbye by the server: no round trip."""
    try:
        readable, _, _ = select.select([conn._sock], [], [], 0)
    except (OSError, ValueError, TypeError):
        return True
    return bool(readable)
