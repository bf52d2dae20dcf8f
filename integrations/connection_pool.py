"""A small pool of open connections per (integration, credentials fingerprint).

Why not psycopg_pool: it connects in a background thread and, when a login
fails, only reports ``PoolTimeout`` after its timeout. The user needs the
server's own words ("password authentication failed for user ...") at once, and
rotation needs them to recognise a rejected credential. So connections are made
on the caller's thread, and the pool only keeps idle ones for reuse.

Keys include the credentials' fingerprint: a rotated secret never reuses a
connection made with the old one, and the old connections are closed.

A connection goes back to the pool only after ``reset`` has returned it to the
state it had when it was made (PostgreSQL: ``DISCARD ALL``): whatever one query
set (settings, temporary tables, prepared statements, roles) never reaches the
next query, whoever runs it.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Generic, Iterator, Protocol, TypeVar


class Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=Closable)


@dataclass
class _Idle(Generic[C]):
    connection: C
    created_at: float


@dataclass
class Lease(Generic[C]):
    """A connection on loan; ``reused`` says it was idle in the pool (it may have died meanwhile)."""

    connection: C
    reused: bool


class ConnectionPool(Generic[C]):
    def __init__(
        self,
        *,
        max_idle: int = 4,
        max_lifetime_s: float = 600.0,
        is_reusable: Callable[[C], bool],
        reset: Callable[[C], None],
    ) -> None:
        self._max_idle = max_idle
        self._max_lifetime_s = max_lifetime_s
        self._is_reusable = is_reusable
        self._reset = reset
        self._lock = threading.Lock()
        # integration id -> fingerprint -> idle connections (LIFO: warm ones first)
        self._idle: dict[int | None, dict[str, list[_Idle[C]]]] = defaultdict(dict)
        self.connections_made = 0

    @contextmanager
    def connection(self, key: int | None, fingerprint: str, connect: Callable[[], C], *,
                   fresh: bool = False) -> Iterator[Lease[C]]:
        """Lend an idle connection (or a new one, or always a new one with ``fresh``).

        It goes back to the pool only if the block ends without an exception,
        ``is_reusable`` accepts it and ``reset`` succeeds; otherwise it is closed.
        """
        entry = None if fresh else self._checkout(key, fingerprint)
        reused = entry is not None
        if entry is None:
            entry = _Idle(connect(), time.monotonic())
            with self._lock:
                self.connections_made += 1
        healthy = False
        try:
            yield Lease(entry.connection, reused)
            healthy = True
        finally:
            # A connection made for unsaved values (Test connection: no integration yet) is not kept.
            if (key is not None and healthy and self._is_reusable(entry.connection)
                    and self._reset_quietly(entry.connection)):
                self._checkin(key, fingerprint, entry)
            else:
                _close_quietly(entry.connection)

    def _reset_quietly(self, connection: C) -> bool:
        try:
            self._reset(connection)
            return True
        except Exception:  # a connection that cannot be reset is not reused
            return False

    def _checkout(self, key: int | None, fingerprint: str) -> _Idle[C] | None:
        now = time.monotonic()
        expired: list[_Idle[C]] = []
        found = None
        with self._lock:
            stack = self._idle.get(key, {}).get(fingerprint, [])
            while stack:
                entry = stack.pop()
                if now - entry.created_at > self._max_lifetime_s:
                    expired.append(entry)
                    continue
                found = entry
                break
        for entry in expired:
            _close_quietly(entry.connection)
        return found

    def _checkin(self, key: int | None, fingerprint: str, entry: _Idle[C]) -> None:
        with self._lock:
            by_fingerprint = self._idle[key]
            # Another fingerprint for the same integration means its credentials
            # changed: the connections made with the old ones go.
            stale = [fp for fp in by_fingerprint if fp != fingerprint]
            doomed = [e for fp in stale for e in by_fingerprint.pop(fp)]
            stack = by_fingerprint.setdefault(fingerprint, [])
            if len(stack) < self._max_idle:
                stack.append(entry)
            else:
                doomed.append(entry)
        for e in doomed:
            _close_quietly(e.connection)


def _close_quietly(connection: Closable) -> None:
    try:
        connection.close()
    except Exception:  # a broken connection may fail to close; it is gone either way
        pass
