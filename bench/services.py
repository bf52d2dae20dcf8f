"""The processes the benchmark runs against, started and always stopped by it.

PostgreSQL (``TEST_POSTGRES_URL``, else a throwaway server from devtools.localpg),
moto's server for Secrets Manager, a Celery worker on the configured broker and a
web server. Everything listens on 127.0.0.1. ``Services`` is a context manager:
leaving it (normally, on an error or on Ctrl+C) stops every process it started,
and only those, by their own process ids.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import psycopg

ROOT = Path(__file__).resolve().parent.parent
# The benchmark's own queue: on a broker shared with a developer's app (Redis, RabbitMQ),
# its worker never takes their tasks and theirs never take the benchmark's.
QUEUE = "credtool-bench"
TARGET_DB = "credtool_bench"
TARGET_ROLE = "credtool_bench"
APP_DB = "credtool_bench_app"
LARGE_TABLE = "bench_rows"
LARGE_ROWS = 200_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).read()
        return True
    except Exception:
        return False


@dataclass
class Target:
    """The database the integrations point at, on ``superuser_url``'s server."""

    superuser_url: str
    host: str
    port: int
    database: str
    username: str
    password: str

    def values(self) -> dict[str, object]:
        return {"host": self.host, "port": self.port, "database": self.database, "username": self.username,
                "password": self.password, "sslmode": "prefer"}

    def superuser(self, **kwargs: object) -> psycopg.Connection:
        return psycopg.connect(self.superuser_url, autocommit=True, **kwargs)


class Services:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._processes: list[tuple[str, subprocess.Popen]] = []
        self._cleanups: list[Callable[[], None]] = []
        self.postgres_source = ""

    # -- lifecycle ------------------------------------------------------------------
    def __enter__(self) -> "Services":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        # A second Ctrl+C (or SIGTERM) during the cleanup must not leave processes behind.
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for name, process in reversed(self._processes):
                _stop(process)
            self._processes.clear()
            for cleanup in reversed(self._cleanups):
                try:
                    cleanup()
                except Exception as exc:  # keep cleaning up the rest
                    print(f"bench: cleanup failed: {exc}", file=sys.stderr)
            self._cleanups.clear()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")
        # Own session: Ctrl+C in the terminal reaches the benchmark, which then stops
        # its children in order (the worker's warm shutdown also stops its sandbox pool).
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self._processes.append((name, process))
        return process

    def log_tail(self, name: str, chars: int = 3000) -> str:
        try:
            return (self.log_dir / f"{name}.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def pid(self, name: str) -> int | None:
        return next((p.pid for n, p in self._processes if n == name), None)

    def alive(self, name: str) -> bool:
        return any(n == name and p.poll() is None for n, p in self._processes)

    def stop(self, *names: str) -> None:
        """Stop these processes now rather than at exit: all are told at once, so their shutdowns overlap."""
        chosen = [p for n, p in self._processes if n in names and p.poll() is None]
        for process in chosen:
            process.terminate()
        for process in chosen:
            _stop(process)

    # -- PostgreSQL -----------------------------------------------------------------
    def postgres(self) -> str:
        """A superuser URL: TEST_POSTGRES_URL, else a throwaway server stopped at exit."""
        url = os.environ.get("TEST_POSTGRES_URL")
        if url:
            psycopg.connect(url, connect_timeout=5).close()
            self.postgres_source = "TEST_POSTGRES_URL"
            return url
        from devtools import localpg

        before = set(Path(tempfile.gettempdir()).glob("credtool-pg-*"))
        try:
            server = localpg.start()
        except BaseException:
            # Interrupted while it started (or it failed): stop the server this call started, by its pid.
            for datadir in set(Path(tempfile.gettempdir()).glob("credtool-pg-*")) - before:
                _stop_postgres(datadir)
            raise
        self._cleanups.append(server.stop)
        self.postgres_source = "throwaway (devtools.localpg)"
        return server.url

    def target_database(self, superuser_url: str) -> Target:
        info = psycopg.conninfo.conninfo_to_dict(superuser_url)
        password = "bench-" + secrets.token_hex(8)
        with psycopg.connect(superuser_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {TARGET_DB} WITH (FORCE)")
            conn.execute(f"DROP ROLE IF EXISTS {TARGET_ROLE}")
            conn.execute(f"CREATE ROLE {TARGET_ROLE} LOGIN PASSWORD '{password}'")
            conn.execute(f"CREATE DATABASE {TARGET_DB} OWNER {TARGET_ROLE}")
        self._cleanups.append(lambda: _drop_database(superuser_url, TARGET_DB, TARGET_ROLE))
        with psycopg.connect(superuser_url, dbname=TARGET_DB, autocommit=True) as conn:
            conn.execute(f"SET ROLE {TARGET_ROLE}")
            # Unlogged: it is rebuilt on every run; five columns of everyday types.
            conn.execute(f"""
                CREATE UNLOGGED TABLE {LARGE_TABLE} (
                    id integer PRIMARY KEY, name text NOT NULL, amount numeric(12, 2) NOT NULL,
                    created_at timestamptz NOT NULL, active boolean NOT NULL);
                INSERT INTO {LARGE_TABLE}
                SELECT g, 'customer ' || g, round((g % 10000) / 7.0, 2), '2024-01-01'::timestamptz + g * interval '1 minute',
                       g % 3 = 0
                FROM generate_series(1, {LARGE_ROWS}) AS g;
                ANALYZE {LARGE_TABLE};
            """)
        host = str(info.get("host") or "127.0.0.1")
        if host.startswith("/") or host == "localhost":
            host = "127.0.0.1"
        return Target(superuser_url, host, int(info.get("port") or 5432), TARGET_DB, TARGET_ROLE, password)

    def app_database(self, superuser_url: str) -> str:
        """A database for the app itself on the same server (BENCH_APP_DB=postgres)."""
        from urllib.parse import quote

        info = psycopg.conninfo.conninfo_to_dict(superuser_url)
        with psycopg.connect(superuser_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {APP_DB} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {APP_DB}")
        self._cleanups.append(lambda: _drop_database(superuser_url, APP_DB, None))
        user = quote(str(info.get("user") or "postgres"), safe="")
        password = ":" + quote(str(info["password"]), safe="") if info.get("password") else ""
        return f"postgresql://{user}{password}@{info.get('host') or '127.0.0.1'}:{info.get('port') or 5432}/{APP_DB}"

    # -- moto -----------------------------------------------------------------------
    def start_moto(self) -> str:
        port = free_port()
        self.spawn("moto", [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)])
        return f"http://127.0.0.1:{port}"

    def wait_moto(self, url: str) -> None:
        wait_until(lambda: _answers(url + "/moto-api/") or not self.alive("moto"), timeout=30, what="moto's server")
        if not self.alive("moto"):
            raise RuntimeError(f"moto's server exited:\n{self.log_tail('moto')}")

    # -- worker and web -------------------------------------------------------------
    def start_worker(self, env: dict[str, str]) -> None:
        from profiles.models import Profile
        from runs.workers import queue_name

        # The bench's own queue (no-op tasks) and every profile's, where runs go.
        queues = ",".join([QUEUE, *(queue_name(key) for key in Profile.objects.values_list("key", flat=True))])
        self.spawn("worker", [
            sys.executable, "-m", "celery", "-A", "credtool", "worker", "--loglevel=INFO",
            "--include", "bench.tasks", "-Q", queues, "-n", f"bench-{os.getpid()}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ], env)

    def wait_worker(self) -> None:
        wait_until(lambda: " ready." in self.log_tail("worker", 100_000) or not self.alive("worker"),
                   timeout=90, what="the Celery worker")
        if not self.alive("worker"):
            raise RuntimeError(f"the Celery worker exited at start:\n{self.log_tail('worker')}")

    def start_web(self, env: dict[str, str]) -> str:
        port = free_port()
        self.spawn("web", [sys.executable, "-m", "bench.web", str(port)], env)
        return f"http://127.0.0.1:{port}"

    def wait_web(self, url: str) -> None:
        wait_until(lambda: _answers(url + "/accounts/login/") or not self.alive("web"), timeout=60,
                   what="the web server")
        if not self.alive("web"):
            raise RuntimeError(f"the web server exited at start:\n{self.log_tail('web')}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=20)
        return
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # its own session: the group it started
    except (ProcessLookupError, PermissionError):
        process.kill()
    process.wait()


def _stop_postgres(datadir: Path) -> None:
    """Stop what an interrupted localpg.start() left running in ``datadir`` (initdb, its
    bootstrap backend, or PostgreSQL: found by their command line or working directory),
    then remove the directory."""
    def started_here() -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if (str(datadir).encode() in (entry / "cmdline").read_bytes()
                            or os.readlink(entry / "cwd").startswith(str(datadir))):
                        pids.append(int(entry.name))
                except OSError:
                    pass
        return pids

    for pid in started_here():
        try:
            os.kill(pid, signal.SIGKILL)  # a throwaway server: nothing to shut down cleanly
        except OSError:
            pass
    try:
        wait_until(lambda: not started_here(), timeout=10, what="PostgreSQL to stop")
    except RuntimeError:
        pass
    shutil.rmtree(datadir, ignore_errors=True)


def _drop_database(superuser_url: str, database: str, role: str | None) -> None:
    with psycopg.connect(superuser_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        if role:
            conn.execute(f"DROP ROLE IF EXISTS {role}")
