"""A throwaway MariaDB server for tests, the benchmark and the demo.

Uses Debian's ``mariadb-server`` binaries (``make test`` installs them when
missing), on 127.0.0.1 and a free port, with a data directory of its own that
goes when the server stops. Its ``root`` has a password, so a wrong password
fails as it would in production.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT_PASSWORD = "mariadb-root"


@dataclass
class LocalMySQL:
    datadir: Path
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"mysql://root:{ROOT_PASSWORD}@127.0.0.1:{self.port}/"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.datadir, ignore_errors=True)


def _binary(name: str) -> str:
    found = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)),
                                       None)
    if found is None:
        raise RuntimeError(f"{name} is not installed: install Debian's mariadb-server (make test does)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(timeout_s: float = 60) -> LocalMySQL:
    import pymysql

    datadir = Path(tempfile.mkdtemp(prefix="credtool-mariadb-"))
    as_root = ["--user=root"] if os.geteuid() == 0 else []
    install = subprocess.run([_binary("mariadb-install-db"), "--no-defaults", f"--datadir={datadir}",
                              "--auth-root-authentication-method=normal", "--skip-test-db", *as_root],
                             capture_output=True, text=True)
    if install.returncode != 0:
        shutil.rmtree(datadir, ignore_errors=True)
        raise RuntimeError(f"mariadb-install-db failed: {install.stderr[-2000:]}")
    port = _free_port()
    log = open(datadir / "server.log", "wb")
    process = subprocess.Popen(
        [_binary("mariadbd"), "--no-defaults", f"--datadir={datadir}", f"--port={port}", "--bind-address=127.0.0.1",
         f"--socket={datadir / 'mysqld.sock'}", f"--pid-file={datadir / 'mysqld.pid'}", "--skip-log-bin",
         "--innodb-buffer-pool-size=32M", "--skip-name-resolve", *as_root],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = LocalMySQL(datadir, port, process)
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            output = (datadir / "server.log").read_text(errors="replace")[-2000:]
            server.stop()
            raise RuntimeError(f"mariadbd exited at start:\n{output}")
        try:
            # root@localhost, through the socket: give root a password and a TCP account.
            conn = pymysql.connect(unix_socket=str(datadir / "mysqld.sock"), user="root", password="")
            break
        except pymysql.err.MySQLError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError("mariadbd did not accept connections in time") from None
            time.sleep(0.2)
    with conn:
        with conn.cursor() as cursor:
            for statement in (f"CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '{ROOT_PASSWORD}'",
                              f"ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '{ROOT_PASSWORD}'",
                              "GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION",
                              f"ALTER USER 'root'@'localhost' IDENTIFIED BY '{ROOT_PASSWORD}'"):
                cursor.execute(statement)
    return server


if __name__ == "__main__":  # python -m devtools.localmysql: a server until Ctrl+C
    server = start()
    print(server.url, flush=True)
    try:
        server.process.wait()
    except KeyboardInterrupt:
        server.stop()
