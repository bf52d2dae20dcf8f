"""A uid of its own for each running step, where steps get no cgroup each (pure: no Django).

Without a cgroup per step the only process limit is RLIMIT_NPROC, and the kernel
counts it per uid: steps that share a uid share one count, so one step forking to
its limit stops every other step from starting a thread. Here each child takes a
uid from a small range of unprivileged ids for its whole life (setuid to a bare
number needs no /etc/passwd entry), so a step's forks count against its own limit.

A uid is held with ``flock`` on ``/run/credtool-sandbox/uid-<n>.lock``: threads and
worker processes of one host never hold the same uid at once, and a dead worker's
locks go with it. Any process still running under a uid is killed when the uid is
taken (a dead worker's step) and when it is given back, unless the step ran in a
PID namespace, whose end has killed them all already (the kill costs ~6 ms: a fork
and exec from the worker).
"""
from __future__ import annotations

import fcntl
import itertools
import logging
import os
import pwd
import re
import stat
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

log = logging.getLogger(__name__)

SETTING = "CREDTOOL_SANDBOX_UIDS"
DEFAULT_UIDS = range(3_100_000, 3_100_064)
MAX_UIDS = 65_536
LOCK_DIR = Path("/run/credtool-sandbox")
WAIT_S = 10.0
# Run as the uid: SIGKILL to every process it may signal, i.e. all of its own (Linux
# spares the caller). One fork and exec (~1 ms) instead of reading every /proc/*/status.
KILL_ALL = "kill -s KILL -- -1 2>/dev/null; exit 0"


class NoFreeUid(RuntimeError):
    """Every uid of the range is held by a running (or waiting) step."""


def parse(text: str) -> range:
    """``"3100000-3100063"`` -> those uids, both ends included; ValueError for anything unsafe.

    Refused: root, ids above 2**32 - 2, more than 65,536 ids, and any id that names a
    user or service in the password database (a step would own its files and processes).
    """
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"{SETTING} must be a range of uids such as 3100000-3100063, not {text!r}")
    low, high = int(match.group(1)), int(match.group(2))
    if not 0 < low <= high <= 2**32 - 2:
        raise ValueError(f"{SETTING}={text!r}: the range must run upwards, from above 0 (root) to 4294967294")
    if high - low + 1 > MAX_UIDS:
        raise ValueError(f"{SETTING}={text!r}: at most {MAX_UIDS} uids")
    uids = range(low, high + 1)
    taken = sorted(entry.pw_uid for entry in pwd.getpwall() if entry.pw_uid in uids)
    if taken:
        raise ValueError(f"{SETTING}={text!r} holds uids of existing users ({', '.join(map(str, taken[:5]))}): "
                         "steps must run as ids that own nothing")
    return uids


def from_environ(environ: Mapping[str, str]) -> range:
    """CREDTOOL_SANDBOX_UIDS, or the default range 3100000-3100063."""
    text = environ.get(SETTING, "").strip()
    return parse(text) if text else parse(f"{DEFAULT_UIDS[0]}-{DEFAULT_UIDS[-1]}")


@dataclass
class Lease:
    """One uid, held until ``release``."""

    uid: int
    _fd: int

    def release(self, *, kill: bool = True) -> None:
        """Kill whatever still runs as this uid (unless the caller knows nothing can), then
        let the next step have it."""
        try:
            if kill:
                kill_all(self.uid)
        finally:
            os.close(self._fd)  # drops the flock


class UidPool:
    """Hands each child a uid nobody else on this host holds; thread- and process-safe."""

    def __init__(self, uids: range, lock_dir: Path = LOCK_DIR) -> None:
        self.uids, self.lock_dir = uids, lock_dir
        # Round robin from a per-process start: a given-back uid comes round again last
        # (its killed processes are long gone), and worker processes rarely collide.
        self._next = itertools.count(os.getpid() % len(uids))
        self._checked = False
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"{self.uids[0]}-{self.uids[-1]}"

    def take(self, wait_s: float = WAIT_S) -> Lease:
        """A uid for one child, waiting up to ``wait_s`` while all are held; else NoFreeUid."""
        self._lock_dir()
        deadline = time.monotonic() + wait_s
        while True:
            for _ in range(len(self.uids)):
                uid = self.uids[next(self._next) % len(self.uids)]
                fd = os.open(self.lock_dir / f"uid-{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    # Per open file: two threads of one process exclude each other too.
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                try:
                    kill_all(uid)  # what a dead worker's step may have left under it
                except BaseException:
                    os.close(fd)
                    raise
                return Lease(uid, fd)
            if time.monotonic() >= deadline:
                raise NoFreeUid(f"all {len(self.uids)} sandbox uids ({self.describe()}) are in use; "
                                f"widen {SETTING} or run fewer steps at once")
            time.sleep(0.05)

    def _lock_dir(self) -> None:
        with self._lock:
            if self._checked:
                return
            try:
                self.lock_dir.mkdir(mode=0o700)
            except FileExistsError:
                pass
            info = os.lstat(self.lock_dir)
            # Anyone who could write here could hold every uid, or share one with us.
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
                raise NoFreeUid(f"{self.lock_dir} must be a directory of the worker's user that no one else "
                                "can write")
            self._checked = True


_pools: dict[tuple[range, Path], UidPool] = {}
_pools_lock = threading.Lock()


def pool(uids: range, lock_dir: Path = LOCK_DIR) -> UidPool:
    """The one pool of this process for ``uids`` (every detection shares it)."""
    with _pools_lock:
        if (uids, lock_dir) not in _pools:
            _pools[uids, lock_dir] = UidPool(uids, lock_dir)
        return _pools[uids, lock_dir]


def kill_all(uid: int) -> None:
    subprocess.run(["/bin/sh", "-c", KILL_ALL], user=uid, group=uid, extra_groups=[], cwd="/",
                   env={"PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=10, check=False)
