"""A throwaway PostgreSQL server for tests, the benchmark and the demo.

Uses the binaries that the ``pgserver`` wheel ships, so a machine with only
Python can run PostgreSQL. Unlike ``pgserver.get_server`` it listens on TCP
(127.0.0.1 and a free port), because integrations connect by host and port and
refuse Unix-socket paths, and it requires passwords over TCP (scram), so a wrong
password fails as it would in production.
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SUPERUSER_PASSWORD = "postgres-superuser"


@dataclass
class LocalPostgres:
    datadir: Path
    port: int
    process: subprocess.Popen | None

    @property
    def url(self) -> str:
        return f"postgresql://postgres:{SUPERUSER_PASSWORD}@127.0.0.1:{self.port}/postgres"

    def stop(self, *, keep_data: bool = False) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM is PostgreSQL's "smart" shutdown... for new clients only
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not keep_data:
            shutil.rmtree(self.datadir, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start again on the same data and port (a database restart, as users see one)."""
        self.stop(keep_data=True)
        self.process = _launch(self.datadir, self.port)
        _wait_ready(self)


def _bin_dir() -> Path:
    from pgserver._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> str | None:
    # PostgreSQL refuses to run as root.
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


def start(port: int | None = None) -> LocalPostgres:
    user = _run_as()
    datadir = Path(tempfile.mkdtemp(prefix="credtool-pg-"))
    pwfile = datadir / "pw"
    pwfile.write_text(SUPERUSER_PASSWORD)
    if user:
        entry = pwd.getpwnam(user)
        os.chown(datadir, entry.pw_uid, entry.pw_gid)
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    data = datadir / "data"
    subprocess.run(
        [str(_bin_dir() / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}",
         "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C.UTF-8"],
        check=True, capture_output=True, user=user, cwd=datadir,
    )
    server = LocalPostgres(datadir, port or _free_port(), None)  # type: ignore[arg-type]
    server.process = _launch(datadir, server.port)
    try:
        _wait_ready(server)
    except RuntimeError:
        server.stop()
        raise
    return server


def _launch(datadir: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [str(_bin_dir() / "postgres"), "-D", str(datadir / "data"), "-h", "127.0.0.1", "-p", str(port),
         "-k", str(datadir), "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
         "-c", "max_connections=200"],
        stdout=subprocess.DEVNULL, stderr=open(datadir / "postgres.log", "ab"), user=_run_as(), cwd=datadir,
        start_new_session=True,
    )


def _wait_ready(server: LocalPostgres) -> None:
    import psycopg

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"PostgreSQL exited at start: {(server.datadir / 'postgres.log').read_text()[-2000:]}")
        try:
            psycopg.connect(server.url, connect_timeout=2).close()
            return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError("PostgreSQL did not start within 30 s")


if __name__ == "__main__":  # python -m devtools.localpg: a server until Ctrl+C
    server = start(int(os.environ.get("PGSERVER_PORT", "0")) or None)
    print(server.url, flush=True)
    try:
        server.process.wait()
    except KeyboardInterrupt:
        server.stop()
