"""Runs one untrusted Python step in a separate, isolated, fresh interpreter (pure: no Django).

Isolation, when bubblewrap is available (``bwrap``, Debian's ``bubblewrap``):
- a fresh interpreter by fork+exec (``python -I child.py``), never ``exec()`` in
  the worker and never a fork of a process holding secrets;
- new PID, IPC and UTS namespaces and a fresh /proc: the worker's environment
  and memory under /proc/<pid> are out of sight;
- a new mount namespace that shows only the system's libraries, the Python
  installation, the virtualenv and an empty tmpfs as the working directory: not
  the source tree, the SQLite database, the keys or ``.env``;
- an empty environment: ``Env`` values arrive with the request on stdin;
- as root, the child drops to an unprivileged user (no capabilities) before the
  user's code runs; CPU, memory, file-size and process-count limits are set
  first, and a wall-clock timeout kills the whole namespace.
Network stays open, so steps can call AWS.

A pool of pre-started children, heavy modules already imported, makes a step
cost a few milliseconds; each child runs exactly one step and exits.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import pwd
import queue
import selectors
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
CHILD = HERE / "child.py"
OUTPUTS = HERE.parent / "outputs.py"
APP_ENV_PREFIX = "CREDTOOL_APP_ENV_"
SANDBOX_USER = "credtool-sandbox"
# A cold child imports boto3 before it says it is ready; that is not the step's time.
STARTUP_ALLOWANCE_S = 20.0


@dataclass
class StepLimits:
    timeout_s: float = 30
    memory_mb: int = 1024
    cpu_s: int | None = None  # defaults to the timeout
    file_size_mb: int = 16
    processes: int = 64
    output_bytes: int = 1_048_576
    stream_bytes: int = 65_536


@dataclass
class StepError:
    type: str
    message: str
    line: int | None = None


@dataclass
class StepResult:
    ok: bool
    output: Any = None
    stdout: str = ""
    stderr: str = ""
    duration_ms: float = 0.0
    error: StepError | None = None
    timed_out: bool = False
    pid: int | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # outputs may hold secrets
        return f"StepResult(ok={self.ok}, timed_out={self.timed_out}, error={self.error!r})"


def app_env_from(environ: Mapping[str, str]) -> dict[str, str]:
    """The CREDTOOL_APP_ENV_* variables: what steps read as ``Env``."""
    return {k: v for k, v in environ.items() if k.startswith(APP_ENV_PREFIX)}


# --- How a child is started ---------------------------------------------------------

@dataclass(frozen=True)
class Isolation:
    mode: str  # "bubblewrap" or "process"
    uid: int | None
    gid: int | None
    warning: str = ""


_isolation: Isolation | None = None
_isolation_lock = threading.Lock()


def isolation() -> Isolation:
    global _isolation
    with _isolation_lock:
        if _isolation is None:
            _isolation = _detect_isolation()
            if _isolation.warning:
                log.warning("workflow sandbox: %s", _isolation.warning)
        return _isolation


def isolation_status() -> str:
    mode = isolation()
    return mode.warning or f"steps run in bubblewrap as uid {mode.uid if mode.uid is not None else os.getuid()}"


def _sandbox_ids() -> tuple[int | None, int | None]:
    if os.geteuid() != 0:
        return None, None
    for name in (SANDBOX_USER, "nobody"):
        try:
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
        except KeyError:
            continue
    return 65534, 65534


def _detect_isolation() -> Isolation:
    uid, gid = _sandbox_ids()
    if shutil.which("bwrap"):
        probe = subprocess.run(_bwrap_prefix() + [sys.executable, "-I", "-c", "print(1)"],
                               capture_output=True, env={}, timeout=30)
        if probe.returncode == 0 and probe.stdout.strip() == b"1":
            return Isolation("bubblewrap", uid, gid)
        reason = probe.stderr.decode(errors="replace").strip()[:300]
        return Isolation("process", uid, gid, f"bubblewrap failed to start ({reason}); steps run in plain "
                         "processes that can see the worker's files")
    return Isolation("process", uid, gid, "bubblewrap (bwrap) is not installed; steps run in plain processes "
                     "that can see the worker's files. Install Debian's bubblewrap package.")


def _bind_system() -> list[str]:
    args: list[str] = []
    for path in ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    # Only what name resolution, TLS and users need from /etc.
    for path in ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/ssl", "/etc/ca-certificates",
                 "/etc/passwd", "/etc/group", "/etc/localtime", "/etc/gai.conf", "/etc/host.conf"):
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    prefixes = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix), sys.prefix}
    for prefix in sorted(prefixes):
        if prefix.startswith(("/usr/", "/bin/", "/lib")) or prefix == "/usr":
            continue
        # The directories leading to a bind are made by bwrap as root-only; the
        # step runs unprivileged and must traverse them to reach its packages.
        for parent in reversed(Path(prefix).parents[:-1]):
            args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", prefix, prefix]
    return args


def _bwrap_prefix() -> list[str]:
    base = ["bwrap", "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--hostname", "sandbox"]
    if os.geteuid() != 0:
        # Unprivileged: a user namespace is what makes the other namespaces possible.
        base += ["--unshare-user", "--cap-drop", "ALL"]
    return base + _bind_system() + [
        "--proc", "/proc", "--dev", "/dev",
        "--size", str(64 * 1024 * 1024), "--tmpfs", "/tmp",
        "--dir", "/sandbox", "--ro-bind", str(CHILD), "/sandbox/child.py",
        "--ro-bind", str(OUTPUTS), "/sandbox/outputs.py",
        "--chdir", "/tmp", "--clearenv",
        "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/tmp",
        "--setenv", "LANG", "C.UTF-8", "--setenv", "TMPDIR", "/tmp",
    ]


def _spawn() -> subprocess.Popen:
    mode = isolation()
    if mode.mode == "bubblewrap":
        argv = _bwrap_prefix() + [sys.executable, "-I", "-X", "frozen_modules=on", "/sandbox/child.py"]
        cwd = "/"
        kwargs: dict[str, Any] = {}
    else:
        workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"credtool-step-{os.getpid()}-{time.monotonic_ns()}"
        workdir.mkdir(mode=0o700)
        if mode.uid is not None:
            os.chown(workdir, mode.uid, mode.gid or mode.uid)
        argv = [sys.executable, "-I", str(CHILD)]
        cwd = str(workdir)
        # Plain processes change user before exec (in C, no preexec_fn).
        kwargs = {"user": mode.uid, "group": mode.gid, "extra_groups": []} if mode.uid is not None else {}
    return subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": cwd},
        start_new_session=True, close_fds=True, **kwargs,
    )


# --- Running one step in one child ------------------------------------------------------

def _request(code: str, step_name: str, steps: Mapping[str, Any], params: Mapping[str, Any],
             env: Mapping[str, str], limits: StepLimits) -> bytes:
    mode = isolation()
    # Unprivileged workers cannot change user; count this user's processes in the limit.
    processes = limits.processes
    if mode.uid is None:
        processes += _processes_of_this_user()
    return json.dumps({
        "code": code, "step_name": step_name, "steps": dict(steps), "params": dict(params), "env": dict(env),
        "uid": mode.uid, "gid": mode.gid,
        "limits": {"cpu_s": max(1, int(limits.cpu_s or limits.timeout_s)), "memory_mb": limits.memory_mb,
                   "file_size_mb": limits.file_size_mb, "processes": processes,
                   "output_bytes": limits.output_bytes, "stream_bytes": limits.stream_bytes},
    }, ensure_ascii=False).encode()


def _processes_of_this_user() -> int:
    uid = os.getuid()
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, 9)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.kill()
    except ProcessLookupError:
        pass
    process.wait()


def _exchange(process: subprocess.Popen, request: bytes, deadline: float, cap: int) -> tuple[bytes, bytes, str]:
    """Send the request; read the result and stderr until EOF, the deadline or the cap."""
    writer = threading.Thread(target=_write_all, args=(process, request), daemon=True)
    writer.start()
    selector = selectors.DefaultSelector()
    chunks: dict[Any, list[bytes]] = {process.stdout: [], process.stderr: []}
    sizes = {process.stdout: 0, process.stderr: 0}
    for stream in chunks:
        os.set_blocking(stream.fileno(), False)
        selector.register(stream, selectors.EVENT_READ)
    problem = ""
    try:
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                problem = "timeout"
                break
            for key, _ in selector.select(timeout=min(remaining, 1.0)):
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fileobj)
                    continue
                sizes[key.fileobj] += len(data)
                if sizes[key.fileobj] > cap:
                    problem = "too-big"
                    break
                chunks[key.fileobj].append(data)
            if problem:
                break
    finally:
        selector.close()
    return b"".join(chunks[process.stdout]), b"".join(chunks[process.stderr]), problem


def _wait_ready(process: subprocess.Popen, timeout: float) -> bool:
    """Wait for the child's one-byte "ready" (sent once its imports are done)."""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=timeout):
            return False
    return os.read(process.stdout.fileno(), 1) == b"R"


def _write_all(process: subprocess.Popen, data: bytes) -> None:
    try:
        process.stdin.write(data)
        process.stdin.close()
    except (BrokenPipeError, OSError):
        pass


def run_in(process: subprocess.Popen, code: str, *, step_name: str, steps: Mapping[str, Any],
           params: Mapping[str, Any], env: Mapping[str, str], limits: StepLimits) -> StepResult:
    request = _request(code, step_name, steps, params, env, limits)
    if not _wait_ready(process, STARTUP_ALLOWANCE_S):
        _kill(process)
        return StepResult(False, pid=process.pid, error=_crash(process.returncode, process.stderr.read() or b"", limits)
                          if process.returncode not in (None, -9) else
                          StepError("SandboxError", f"the sandbox did not start within {STARTUP_ALLOWANCE_S:g} s"))
    started = time.monotonic()
    deadline = started + limits.timeout_s
    cap = limits.output_bytes * 2 + limits.stream_bytes * 4 + 65536
    out, err, problem = _exchange(process, request, deadline, cap)
    if problem:
        _kill(process)
    else:
        try:
            process.wait(timeout=max(0.5, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill(process)
            problem = "timeout"
    wall_ms = (time.monotonic() - started) * 1000
    if problem == "timeout":
        return StepResult(False, duration_ms=wall_ms, timed_out=True, pid=process.pid,
                          error=StepError("Timeout", f"the step timed out after {limits.timeout_s:g} s and was stopped"))
    if problem == "too-big":
        return StepResult(False, duration_ms=wall_ms, pid=process.pid,
                          error=StepError("OutputError", "the step wrote more output than its limits allow"))
    try:
        data = json.loads(out)
    except ValueError:
        if _signal_of(process.returncode) == 24:  # SIGXCPU: a busy step used up its time
            return StepResult(False, duration_ms=wall_ms, timed_out=True, pid=process.pid, error=StepError(
                "Timeout", f"the step timed out after {limits.cpu_s or limits.timeout_s:g} s of CPU time and was stopped"))
        return StepResult(False, duration_ms=wall_ms, pid=process.pid, error=_crash(process.returncode, err, limits))
    error = data.get("error")
    return StepResult(
        ok=bool(data.get("ok")), output=data.get("output"), stdout=data.get("stdout", ""),
        stderr=data.get("stderr", ""), duration_ms=float(data.get("duration_ms", wall_ms)),
        error=StepError(error["type"], error["message"], error.get("line")) if error else None, pid=process.pid,
    )


def _signal_of(returncode: int | None) -> int | None:
    """The signal that ended the child: negative codes directly, 128+N through bwrap's init."""
    if returncode is None:
        return None
    if returncode < 0:
        return -returncode
    if returncode > 128:
        return returncode - 128
    return None


def _crash(returncode: int | None, stderr: bytes, limits: StepLimits) -> StepError:
    signal_number = _signal_of(returncode)
    if signal_number == 25:  # SIGXFSZ
        return StepError("FileSizeLimit", f"the step wrote a file over {limits.file_size_mb} MB")
    if signal_number is not None:
        return StepError("Killed", f"the step's process was killed by signal {signal_number}")
    tail = stderr.decode(errors="replace").strip().splitlines()[-3:]
    return StepError("SandboxError", "the step's process ended without a result"
                     + (f": {' / '.join(tail)}" if tail else f" (exit code {returncode})"))


# --- The pool -----------------------------------------------------------------------

class SandboxPool:
    """Children started ahead of time; each one is handed out once and never reused."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._ready: queue.Queue[subprocess.Popen] = queue.Queue()
        self._lock = threading.Lock()
        self._starting = 0
        self._closed = False
        self.handed_out: list[int] = []

    def _fill(self) -> None:
        while True:
            with self._lock:
                if self._closed or self._ready.qsize() + self._starting >= self.size:
                    return
                self._starting += 1
            try:
                process = _spawn()
                self._ready.put(process)
            except Exception:
                log.exception("could not start a sandbox process")
                return
            finally:
                with self._lock:
                    self._starting -= 1

    def _refill_soon(self) -> None:
        threading.Thread(target=self._fill, name="sandbox-pool-fill", daemon=True).start()

    def acquire(self) -> subprocess.Popen:
        """A child nobody else has had: a pre-started one, or a new one if none is ready."""
        process = None
        while process is None:
            try:
                candidate = self._ready.get_nowait()
            except queue.Empty:
                process = _spawn()
                break
            if candidate.poll() is None:
                process = candidate
        with self._lock:
            self.handed_out.append(process.pid)
            del self.handed_out[:-1000]
        self._refill_soon()
        return process

    def run_step(self, code: str, *, step_name: str, steps: Mapping[str, Any] | None = None,
                 params: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
                 limits: StepLimits | None = None) -> StepResult:
        process = self.acquire()
        try:
            return run_in(process, code, step_name=step_name, steps=steps or {}, params=params or {},
                          env=env or {}, limits=limits or StepLimits())
        finally:
            if process.poll() is None:
                _kill(process)
            for stream in (process.stdin, process.stdout, process.stderr):
                try:
                    stream.close()
                except Exception:
                    pass

    def warm(self) -> None:
        self._fill()

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
        while True:
            try:
                _kill(self._ready.get_nowait())
            except queue.Empty:
                return


_default_pool: SandboxPool | None = None
_default_pool_lock = threading.Lock()


def default_pool() -> SandboxPool:
    global _default_pool
    with _default_pool_lock:
        if _default_pool is None:
            _default_pool = SandboxPool(size=int(os.environ.get("CREDTOOL_SANDBOX_POOL", "2")))
            atexit.register(_default_pool.shutdown)
        return _default_pool


def run_step(code: str, *, step_name: str, steps: Mapping[str, Any] | None = None,
             params: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
             limits: StepLimits | None = None) -> StepResult:
    """Run one step in a fresh sandboxed interpreter from the default pool."""
    return default_pool().run_step(code, step_name=step_name, steps=steps, params=params, env=env, limits=limits)
