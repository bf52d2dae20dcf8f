"""One step in one started child: send the request, collect the result, enforce the wall clock.

Protocol (see child.py): the child writes one byte ``R`` on stdout when its
imports are done, reads one JSON request from stdin until EOF, and writes one
JSON result on the same stdout pipe, which user code cannot reach through
``print`` or fd 1 (both are redirected before it runs). Before the result, lines
``["stdout", text]`` carry what the step prints as it prints it: all a step that
never answers (killed, cancelled) leaves behind.

The step's cgroup (if any) gets the step's limits before the request is sent, and
its OOM-kill counter is watched while the step runs and read again at the end.
"""
from __future__ import annotations

import functools
import json
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .cgroups import StepGroup
from .launch import Child, Isolation

# A cold child imports boto3 before it is ready; that is not the step's time.
STARTUP_ALLOWANCE_S = 20.0
MB = 1024 * 1024
# Bytes on the pipe per character a step prints, at worst: each one-character write is
# a line of its own (``["stderr", "\ud83d"]`` and a newline), besides its place in the result.
STREAMED_BYTES_PER_CHAR = 32
# How often a running step's OOM-kill counter is read (one small file, ~0.1 ms): an OOM
# kill stops the step within this, instead of letting its survivors run to the timeout.
OOM_CHECK_S = 0.2


@dataclass
class StepLimits:
    timeout_s: float = 30
    # All the step's processes together (its cgroup), on top of what its pre-started
    # interpreter holds; and each process's address space (RLIMIT_AS).
    memory_mb: int = 512
    cpu_s: int | None = None  # CPU seconds for the step itself; defaults to the timeout
    file_size_mb: int = 16  # largest file a step may write (its tmpfs holds 64 MB in all)
    # Processes and threads of the step, its own included: its cgroup's pids.max, or
    # (without one) RLIMIT_NPROC of its uid.
    processes: int = 64
    output_bytes: int = 1_048_576  # the return value, as JSON
    stream_bytes: int = 65_536  # stdout and stderr, each


@dataclass
class StepError:
    type: str  # the exception's class name, or SyntaxError, OutputError, Timeout, SandboxError...
    message: str
    line: int | None = None  # in the user's code


@dataclass
class StepResult:
    ok: bool
    output: Any = None
    stdout: str = ""
    stderr: str = ""
    duration_ms: float = 0.0
    error: StepError | None = None
    timed_out: bool = False
    cancelled: bool = False  # stopped at a user's request (pool.run_step's ``cancel``)
    pid: int | None = field(default=None, repr=False)  # the sandbox process, as the worker sees it

    def __repr__(self) -> str:  # outputs may hold secrets
        return f"StepResult(ok={self.ok}, timed_out={self.timed_out}, error={self.error!r})"


def request_bytes(code: str, step_name: str, steps: Mapping[str, Any], params: Mapping[str, Any],
                  env: Mapping[str, str], limits: StepLimits, found: Isolation, child: Child, *,
                  profile: str | None = None) -> bytes:
    """The request for ``child``: the step, and the limits and user its process sets for itself."""
    processes: int | None = limits.processes
    if child.cgroup is not None:
        # pids.max bounds the step. Its uid is shared with every other step, and RLIMIT_NPROC
        # counts a whole uid, so a per-uid limit would let one step's forks starve the rest.
        processes = None
    elif found.uid is None and os.geteuid() != 0:
        # Steps share this user's process count: leave room for what it runs already.
        processes += _processes_of(os.getuid())
    return json.dumps({
        "code": code, "step_name": step_name, "steps": dict(steps), "params": dict(params), "env": dict(env),
        "profile": profile,
        "uid": child.uid if found.mode == "bubblewrap" else None,
        "gid": child.gid if found.mode == "bubblewrap" else None,
        "limits": {"cpu_s": max(1, int(limits.cpu_s or limits.timeout_s)), "memory_mb": limits.memory_mb,
                   "file_size_mb": limits.file_size_mb, "processes": processes,
                   "output_bytes": limits.output_bytes, "stream_bytes": limits.stream_bytes},
    }).encode()


def _processes_of(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                pass
    return count


def run_in(child: Child, request: bytes, limits: StepLimits) -> StepResult:
    """Run one request in ``child``; the caller stops the child afterwards, whatever happened."""
    pid = child.pid
    ready = _wait_ready(child)
    if ready is not True:
        return StepResult(False, pid=pid, error=ready)
    over_memory: Callable[[], bool] | None = None
    if child.cgroup is not None:
        try:
            child.cgroup.allow(limits.memory_mb, limits.processes)
        except OSError as exc:  # never send a step to a child without its limits
            return StepResult(False, pid=pid, error=StepError("SandboxError", f"could not confine the step: {exc}"))
        over_memory = functools.partial(_oom_killed, child.cgroup)
    started = time.monotonic()
    deadline = started + limits.timeout_s
    try:
        # The child reads all of stdin before it does anything else, so this cannot stall.
        child.process.stdin.write(request)
        child.process.stdin.close()
    except (BrokenPipeError, OSError):
        pass
    # Escaped JSON can be six bytes a character; anything beyond this is not a result.
    cap = limits.output_bytes * 6 + limits.stream_bytes * (12 + 2 * STREAMED_BYTES_PER_CHAR) + 65536
    out, err, problem = _collect(child, deadline, cap, over_memory)
    wall_ms = (time.monotonic() - started) * 1000
    if over_memory is not None and (problem == "memory" or over_memory()):
        # Whatever the main process did (it may have survived and returned): one of the
        # step's processes was killed for its memory, so the step as a whole failed.
        return _over_memory(limits, wall_ms, pid, out)
    if problem == "timeout":
        return _timed_out(limits, wall_ms, pid)
    if problem == "too-big":
        return StepResult(False, duration_ms=wall_ms, pid=pid, error=StepError(
            "OutputError", "the step sent back more than its output limits allow"))
    data, stdout, stderr = answer(out)
    if data is None:
        # No result: how the child ended says why. Its pipes can close a moment
        # before bwrap reports the exit.
        try:
            returncode = child.process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:  # it closed its pipes and carried on
            return _timed_out(limits, (time.monotonic() - started) * 1000, pid)
        return StepResult(False, stdout=stdout, stderr=stderr, duration_ms=wall_ms, pid=pid,
                          timed_out=_signal_of(returncode) == signal.SIGXCPU, error=_crash(returncode, err, limits))
    error = data.get("error")
    return StepResult(
        ok=bool(data.get("ok")), output=data.get("output"), stdout=data.get("stdout", ""),
        stderr=data.get("stderr", ""), duration_ms=float(data.get("duration_ms", wall_ms)), pid=pid,
        error=StepError(error["type"], error["message"], error.get("line")) if error else None,
    )


def answer(out: bytes) -> tuple[dict | None, str, str]:
    """The child's result (None if it never came), and the stdout and stderr it sent while it ran."""
    data: dict | None = None
    streamed: dict[str, list[str]] = {"stdout": [], "stderr": []}
    for line in out.split(b"\n"):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            data = value
        elif isinstance(value, list) and len(value) == 2 and value[0] in streamed and isinstance(value[1], str):
            streamed[value[0]].append(value[1])
    return data, "".join(streamed["stdout"]), "".join(streamed["stderr"])


def _oom_killed(group: StepGroup) -> bool:
    """Has the kernel killed any process of the step for want of memory? The cgroup is the
    step's alone, and a child hit while starting never said it was ready: any kill is the step's."""
    try:
        return group.oom_kills() > 0
    except OSError:  # cannot tell; the step's own result stands
        return False


def _over_memory(limits: StepLimits, wall_ms: float, pid: int, out: bytes) -> StepResult:
    data, stdout, stderr = answer(out)
    if data is not None:
        stdout, stderr = data.get("stdout", ""), data.get("stderr", "")
    return StepResult(False, stdout=stdout, stderr=stderr, duration_ms=wall_ms,
                      pid=pid, error=StepError(
                          "MemoryError", f"the step exceeded its memory limit ({limits.memory_mb} MB) and was stopped"))


def _timed_out(limits: StepLimits, wall_ms: float, pid: int) -> StepResult:
    return StepResult(False, duration_ms=wall_ms, timed_out=True, pid=pid, error=StepError(
        "Timeout", f"the step timed out after {limits.timeout_s:g} s and was stopped"))


def _wait_ready(child: Child) -> StepError | bool:
    """Wait for the child's ``R`` (its imports are done), or say why it never came."""
    stdout = child.process.stdout
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        if not selector.select(timeout=STARTUP_ALLOWANCE_S):
            return StepError("SandboxError", f"the sandbox did not start within {STARTUP_ALLOWANCE_S:g} s")
    if os.read(stdout.fileno(), 1) == b"R":
        return True
    try:  # stdout closed: the child is ending
        child.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    return StepError("SandboxError", "the sandbox failed to start: "
                     + _tail(child.process.stderr.read() or b"", f"exit code {child.process.returncode}"))


def _collect(child: Child, deadline: float, cap: int,
             over_memory: Callable[[], bool] | None = None) -> tuple[bytes, bytes, str]:
    """Read stdout and stderr until the child exits, the deadline passes, too much arrives
    or (``over_memory``) one of its processes is killed for want of memory.

    The child's exit (a pidfd) ends the wait, not EOF: a process the step left
    behind may hold the pipes open, and the caller kills it with the rest.
    """
    process = child.process
    streams = {process.stdout.fileno(): bytearray(), process.stderr.fileno(): bytearray()}
    exited = _pidfd(process.pid)
    selector = selectors.DefaultSelector()
    try:
        for fd in streams:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        if exited is not None:
            selector.register(exited, selectors.EVENT_READ)
        open_streams = len(streams)
        wake = 1.0 if over_memory is None else OOM_CHECK_S
        next_check = time.monotonic() + OOM_CHECK_S
        while open_streams:
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                return b"", b"", "timeout"
            if over_memory is not None and now >= next_check:
                if over_memory():
                    return b"", b"", "memory"
                next_check = now + OOM_CHECK_S
            # Without a pidfd, poll the process now and then instead.
            events = selector.select(timeout=min(remaining, wake if exited is not None else 0.05))
            gone = exited is None and process.poll() is not None
            for key, _ in events:
                if key.fd == exited:
                    gone = True
                    continue
                if not _drain(key.fd, streams[key.fd]):
                    selector.unregister(key.fd)
                    open_streams -= 1
            if gone:
                for fd in streams:  # whatever the child wrote before it ended
                    _drain(fd, streams[fd])
                break
            if sum(len(data) for data in streams.values()) > cap:
                return b"", b"", "too-big"
    finally:
        selector.close()
        if exited is not None:
            os.close(exited)
    return bytes(streams[process.stdout.fileno()]), bytes(streams[process.stderr.fileno()]), ""


def _drain(fd: int, into: bytearray) -> bool:
    """Read what is available; False at EOF."""
    while True:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return True
        if not data:
            return False
        into += data


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _signal_of(returncode: int | None) -> int | None:
    """The signal that ended the step: negative codes directly, 128+N through bwrap."""
    if returncode is None:
        return None
    if returncode < 0:
        return -returncode
    if returncode > 128:
        return returncode - 128
    return None


def _crash(returncode: int | None, stderr: bytes, limits: StepLimits) -> StepError:
    number = _signal_of(returncode)
    if number == signal.SIGXCPU:
        cpu = limits.cpu_s or limits.timeout_s
        return StepError("Timeout", f"the step timed out after {cpu:g} s of CPU time and was stopped")
    if number in set(signal.Signals):
        return StepError("SandboxError", f"the step's process was killed by {signal.Signals(number).name}")
    return StepError("SandboxError", "the step's process ended without a result: "
                     + _tail(stderr, f"exit code {returncode}"))


def _tail(stderr: bytes, otherwise: str) -> str:
    lines = stderr.decode(errors="replace").strip().splitlines()[-3:]
    return " / ".join(lines) if lines else otherwise
