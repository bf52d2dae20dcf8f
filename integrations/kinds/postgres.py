"""PostgreSQL, through psycopg 3."""
from __future__ import annotations

import datetime
import decimal
import ipaddress
import json
import os
import re
import select
import uuid
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq

from .. import destinations
from ..connection_pool import ConnectionPool
from . import register
from .base import CancelToken, Credentials, FieldSpec, Kind, QueryCancelled, QueryResult, StageError

# libpq fills whatever a connection string leaves out from PG* variables,
# ~/.pgpass and service files. A binding that rendered empty must fail, not
# silently log in as the worker's own database user: drop the variables once,
# and point passfile at an empty file on every connection.
for _name in [n for n in os.environ if n.startswith("PG")]:
    del os.environ[_name]

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

# What PostgreSQL says when it rejects a login (28P01 invalid_password,
# 28000 invalid_authorization_specification). psycopg does not expose the
# SQLSTATE of a failed connection, so the server's words are what we have.
_AUTH_FAILURE = re.compile(
    r"password authentication failed|no password supplied|role \".*\" does not exist"
    r"|is not permitted to log in|pg_hba\.conf rejects|authentication failed",
    re.IGNORECASE,
)
_FIRST_KEYWORD = re.compile(r"^\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*\(*\s*(\w+)", re.DOTALL)
_STREAMABLE = {"select", "with", "values", "table"}


def _reusable(conn: psycopg.Connection) -> bool:
    return not conn.closed and conn.info.transaction_status == pq.TransactionStatus.IDLE


# As many idle connections as the worker has threads: fewer made every busy query
# open a new connection (0.3 per query at 16 clients with 4 kept, 0.006 with 8).
_pool: ConnectionPool[psycopg.Connection] = ConnectionPool(
    is_reusable=_reusable, max_idle=int(os.environ.get("CREDTOOL_WORKER_CONCURRENCY") or 8))


@register
class Postgres(Kind):
    slug = "postgres"
    label = "PostgreSQL"
    noop_query = "SELECT 1"
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
        errors: dict[str, str] = {}
        host = str(values.get("host", ""))
        # A host starting with "/" is a Unix socket path to libpq, i.e. a file on the worker.
        if host.startswith("/") or any(c in host for c in " =\\'\"\n"):
            errors["host"] = "Enter a host name or IP address (no paths, spaces or quotes)."
        else:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                if not re.fullmatch(r"[A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:]+\]", host or "x"):
                    errors["host"] = "Enter a host name or IP address."
        port = values.get("port")
        if isinstance(port, int) and not 1 <= port <= 65535:
            errors["port"] = "Enter a port between 1 and 65535."
        return errors

    def connect(self, creds: Credentials, *, connect_timeout: int, timeout_s: int | None = None) -> psycopg.Connection:
        values = creds.values
        errors = self.validate(values)
        if errors:
            raise StageError("connection", "; ".join(errors.values()))
        try:
            port = int(values.get("port") or 5432)
        except (TypeError, ValueError):
            raise StageError("connection", f"port {values.get('port')!r} is not a number") from None
        for required in ("host", "database", "username"):
            if not values.get(required):
                raise StageError("connection", f"{self.field(required).label} is empty")
        address = destinations.check(str(values["host"]), port)
        try:
            return psycopg.connect(
                host=str(values["host"]),
                hostaddr=address,  # the address just checked: DNS cannot swap it now
                port=port,
                dbname=str(values["database"]),
                user=str(values["username"]),
                password=str(values.get("password") or ""),
                sslmode=str(values.get("sslmode") or "prefer"),
                connect_timeout=connect_timeout,
                passfile=os.devnull,
                application_name="credtool",
                # Set once per connection, not per query: the pool keys connections by it.
                options=f"-c statement_timeout={timeout_s * 1000}" if timeout_s else "",
            )
        except psycopg.OperationalError as exc:
            message = _connection_message(exc)
            raise StageError("connection", message, auth_failure=bool(_AUTH_FAILURE.search(message))) from None

    def test_connection(self, creds: Credentials, *, connect_timeout: int = 5) -> str:
        conn = self.connect(creds, connect_timeout=connect_timeout)
        try:
            conn.execute(self.noop_query)
            version = conn.info.server_version
            return (f"Connected to PostgreSQL {version // 10000}.{version % 10000} "
                    f"as {conn.info.user} on {conn.info.dbname}")
        except psycopg.Error as exc:
            raise StageError("connection", _error_text(exc)) from None
        finally:
            conn.close()

    def run_query(
        self, creds: Credentials, sql: str, *, max_rows: int, timeout_s: int, cancel: CancelToken,
        connect_timeout: int = 5, read_only: bool = False,
    ) -> QueryResult:
        options = dict(max_rows=max_rows, timeout_s=timeout_s, cancel=cancel, connect_timeout=connect_timeout,
                       read_only=read_only)
        try:
            return self._run(creds, sql, fresh=False, **options)
        except _StaleConnection:
            # The pooled connection had died while idle (server restart, killed
            # session) before the user's statement was sent: a new one is safe.
            return self._run(creds, sql, fresh=True, **options)

    def _run(self, creds: Credentials, sql: str, *, max_rows: int, timeout_s: int, cancel: CancelToken,
             connect_timeout: int, read_only: bool, fresh: bool) -> QueryResult:
        with _pool.connection(
            creds.integration_id, f"{creds.fingerprint}:{timeout_s}",
            lambda: self.connect(creds, connect_timeout=connect_timeout, timeout_s=timeout_s), fresh=fresh,
        ) as lease:
            conn = lease.connection
            cancel.on_cancel(conn.cancel_safe)
            sql_sent = False
            try:
                if lease.reused and _has_pending_input(conn):
                    raise _StaleConnection()
                if cancel.cancelled:
                    raise QueryCancelled()
                if read_only:
                    conn.execute("SET TRANSACTION READ ONLY")  # opens the transaction, read-only
                sql_sent = True  # from here on, a failure may come after the statement ran
                result = _execute(conn, sql, max_rows=max_rows, read_only=read_only)
                conn.commit()
                if result.status_message.upper().startswith(("SET", "RESET")):
                    # A session setting (e.g. statement_timeout = 0) must not outlive this
                    # query in the pool: the next query gets a fresh session.
                    conn.close()
                return result
            except psycopg.OperationalError as exc:
                if lease.reused and not sql_sent:
                    raise _StaleConnection() from None
                if isinstance(exc, pg_errors.QueryCanceled):
                    if cancel.cancelled:
                        raise QueryCancelled() from None
                    raise StageError(
                        "query", f"{_error_text(exc)} (the statement timeout is {timeout_s} s)") from None
                raise StageError("query", f"the connection was lost: {_error_text(exc)}") from None
            except psycopg.Error as exc:
                raise StageError("query", _error_text(exc)) from None
            finally:
                cancel.on_cancel(None)
                if not conn.closed and conn.info.transaction_status != pq.TransactionStatus.IDLE:
                    try:
                        conn.rollback()
                    except psycopg.Error:
                        conn.close()


class _StaleConnection(Exception):
    pass


def _has_pending_input(conn: psycopg.Connection) -> bool:
    """An idle connection with something to read has been told goodbye by the server
    (terminated session, restart): it must not carry the user's statement. No round trip."""
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _execute(conn: psycopg.Connection, sql: str, *, max_rows: int, read_only: bool) -> QueryResult:
    """Run the user's statement in the connection's transaction (opened here or by the caller)."""
    sql = sql.strip().rstrip(";").strip()
    match = _FIRST_KEYWORD.match(sql)
    if match and match.group(1).lower() in _STREAMABLE:
        # A server-side cursor reads at most max_rows + 1 rows, however big
        # the result: memory follows the row cap, not the table.
        cursor = conn.cursor(name="credtool_query")
        try:
            cursor.execute(sql)
        except (psycopg.errors.QueryCanceled, psycopg.OperationalError):
            raise
        except psycopg.Error:
            # DECLARE refuses some statements (e.g. data-modifying WITH). It ran
            # nothing, so the transaction is rolled back and the statement run plainly,
            # which also reports real errors in the user's own words.
            conn.rollback()
            if read_only:
                conn.execute("SET TRANSACTION READ ONLY")
        else:
            result = _collect(cursor, max_rows)
            conn.commit()  # ends the cursor too: closing it afterwards costs no round trip
            cursor.close()
            return result
    with conn.cursor() as cursor:
        cursor.execute(sql)
        return _collect(cursor, max_rows)


def _collect(cursor: psycopg.Cursor, max_rows: int) -> QueryResult:
    if cursor.description is None:
        # Not a row-returning statement: report what it did ("UPDATE 3").
        return QueryResult(columns=[], rows=[], row_count=max(cursor.rowcount, 0),
                           status_message=cursor.statusmessage or "")
    columns = [column.name for column in cursor.description]
    fetched = cursor.fetchmany(max_rows + 1)
    truncated = len(fetched) > max_rows
    rows = [[display_value(v) for v in row] for row in fetched[:max_rows]]
    return QueryResult(columns=columns, rows=rows, row_count=len(rows), truncated=truncated,
                       status_message=cursor.statusmessage or "")


def display_value(value: Any) -> Any:
    """A cell as JSON: numbers, booleans and null stay as they are, the rest become text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (datetime.date, datetime.time, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def _error_text(exc: psycopg.Error) -> str:
    return str(exc).strip() or type(exc).__name__


def _connection_message(exc: psycopg.OperationalError) -> str:
    # libpq's text, without its prefixes, on one line.
    text = re.sub(r"^connection failed: ", "", str(exc).strip())
    text = re.sub(r"FATAL:\s+", "", text)
    return " ".join(line.strip() for line in text.splitlines() if line.strip()) or "could not connect"


