"""Sandbox processes started ahead of time, each handed out for exactly one step.

A fresh ``python -I -c "import boto3"`` costs about 130 ms; a child that has
already imported boto3 and waits on stdin answers a trivial step in a few ms.
The child holds nothing secret until its request arrives, and its limits and
user are set then, so pre-starting it costs no isolation.
"""
from __future__ import annotations

import atexit
import collections
import logging
import os
import select
import threading
import time
from typing import Any, Callable, Mapping, Protocol

from . import cgroups, launch
from .exchange import StepError, StepLimits, StepResult, request_bytes, run_in

log = logging.getLogger(__name__)

# Measured: 4 absorbs back-to-back steps and bursts of 4; an idle child holds 52 MB (RSS),
# 38 MB of it its own (PSS: the rest is shared with the other children), `make bench`.
DEFAULT_POOL_SIZE = 4
DEFAULT_POOL_MAX = 8  # a burst of 8 steps at once finds 8 children once the pool has seen one
POOL_SETTING = "CREDTOOL_SANDBOX_POOL"
POOL_MAX_SETTING = "CREDTOOL_SANDBOX_POOL_MAX"
# How long children beyond the idle size are kept after the last demand above it: long
# enough for bursts a few seconds or a minute apart, short enough to give memory back.
IDLE_S = 60.0
# After a failed start, wait this long before the next try (do not spin on a broken setup).
RETRY_S = 5.0
# A caller waits this long for the pool's next child before starting one of its own.
WAIT_S = 30.0
CANCELLED = "Cancelled while running."


class Cancellation(Protocol):
    """What ``run_step`` needs of a cancel request (``runs.lifecycle.CancelToken`` is one):
    ``cancelled`` once asked, and the callback to run, from another thread, when it is."""

    cancelled: bool

    def on_cancel(self, callback: Callable[[], None] | None) -> None: ...


def default_starts() -> int:
    """Children importing at once: one per usable core. A start is ~250 ms of one core, so
    more at once only makes each of them late (measured on 2 cores: 8 at once were all ready
    after ~1.3 s, the first among them too; 2 at a time had two ready every ~260 ms, all 8
    within ~1.0 s; one at a time took 2.2 s)."""
    return max(1, len(os.sched_getaffinity(0)))


class SandboxPool:
    """Ready children, each handed out for one step; a used child is discarded and replaced.

    The pool keeps ``size`` children ready when idle. When more steps run or wait at once
    than that, it aims for as many ready children as there were such steps, up to
    ``max_size`` (default: ``size``, a pool that never grows), so that the next burst of the
    same width finds them; ``idle_s`` after the last demand above ``size`` it goes back to
    ``size`` and stops the extra children. One filler thread keeps up to ``starts``
    children starting at once.

    Thread-safe: any number of threads may call ``run_step`` at once. A caller that finds
    no ready child waits for the next one the filler makes ready (the filler is already
    starting it, and another start would only slow every start on a busy machine); with a
    pool of ``max_size`` 0, or when the filler cannot start children, it starts its own.
    """

    def __init__(self, size: int = DEFAULT_POOL_SIZE, *, max_size: int | None = None, idle_s: float = IDLE_S,
                 starts: int | None = None, isolation: launch.Isolation | None = None) -> None:
        max_size = size if max_size is None else max_size
        if not 0 <= size <= max_size:
            raise ValueError(f"a sandbox pool needs 0 <= size <= max_size (not {size} and {max_size})")
        self.size = size
        self.max_size = max_size
        self.idle_s = idle_s
        self.starts = starts or default_starts()
        self._isolation = isolation
        self._ready: collections.deque[launch.Child] = collections.deque()  # said ready; oldest first
        self._starting: list[launch.Child] = []  # spawned, still importing; only the filler touches them
        self._target = size  # ready children aimed for: size, or more after a burst
        self._in_use = 0  # handed out, not yet stopped
        self._waiting = 0  # callers waiting for a ready child
        self._last_demand = 0.0  # monotonic time demand last went above size
        self._failure: str | None = None  # the filler's last failed start, until one succeeds
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a child became ready, or the filler failed
        self._closed = False
        self._filler: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1  # wakes the filler from select (made with the filler)
        # pids handed out, newest last (bounded): each appears once.
        self.handed_out: collections.deque[int] = collections.deque(maxlen=1000)

    @property
    def isolation(self) -> launch.Isolation:
        return self._isolation or launch.isolation()

    @property
    def target(self) -> int:
        """How many ready children the pool aims for now: ``size``, or more after a burst."""
        with self._lock:
            return self._target

    def run_step(self, code: str, *, step_name: str, steps: Mapping[str, Any] | None = None,
                 params: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
                 profile: str | None = None, limits: StepLimits | None = None,
                 cancel: Cancellation | None = None) -> StepResult:
        """Run ``code`` as the body of a function in a child nobody else has had; it reads
        ``profile`` (a profile's key) as ``profile``.

        When ``cancel`` is cancelled (before or while the step runs), every process of the
        step is killed at once and the result says ``cancelled``, with what it printed so far.
        """
        limits = limits or StepLimits()
        found = self.isolation
        try:
            child = self.acquire()
        except launch.SandboxUnavailable as exc:
            return StepResult(False, error=StepError("SandboxError", str(exc)))
        kill = _Kill(child)
        result = StepResult(False)
        try:
            if cancel is not None:
                # In place before ``cancelled`` is read: a cancel from now on kills the child,
                # and one that came earlier is seen below (the token sets it, then calls us).
                cancel.on_cancel(kill)
            if cancel is None or not cancel.cancelled:
                request = request_bytes(code, step_name, steps or {}, params or {}, env or {}, limits, found,
                                        child, profile=profile)
                result = run_in(child, request, limits)
        finally:
            if cancel is not None:
                cancel.on_cancel(None)
            kill.disarm()  # from here on the child's pid may be reaped and reused
            self.release(child)
        if cancel is not None and cancel.cancelled and not result.ok:
            # Whatever the kill made of the step (killed by a signal, no result): it was cancelled.
            return StepResult(False, stdout=result.stdout, stderr=result.stderr, duration_ms=result.duration_ms,
                              pid=result.pid, cancelled=True, error=StepError("Cancelled", CANCELLED))
        return result

    def acquire(self) -> launch.Child:
        """A started child, removed from the pool: a ready one, else the next the filler makes
        ready, else (no filler, or it fails) a new one. Give it back with ``release``."""
        child = None
        with self._lock:
            self._waiting += 1
            self._grow()
            pooled = self.max_size > 0 and not self._closed
        self._ensure_filler()
        self._wake()
        deadline = time.monotonic() + WAIT_S
        dead = []
        with self._lock:
            try:
                while pooled and child is None:
                    while self._ready:
                        candidate = self._ready.popleft()
                        if candidate.process.poll() is None:
                            child = candidate
                            break
                        dead.append(candidate)  # died while waiting (killed from outside)
                    if child is not None or self._closed or self._failure is not None:
                        break
                    left = deadline - time.monotonic()
                    if left <= 0:
                        log.warning("no sandbox process became ready within %.0f s; starting one", WAIT_S)
                        break
                    self._changed.wait(timeout=left)
            finally:
                self._waiting -= 1
            self._in_use += 1  # counted before the spawn below: it is demand too
        for candidate in dead:
            launch.stop(candidate)
        if child is None:
            try:
                child = launch.spawn(self.isolation)
            except BaseException:
                with self._lock:
                    self._in_use -= 1
                raise
        with self._lock:
            self.handed_out.append(child.pid)
        self._wake()  # one fewer ready: the filler starts a replacement
        return child

    def release(self, child: launch.Child) -> None:
        """Stop a child ``acquire`` handed out, and everything of its step."""
        try:
            launch.stop(child)
        finally:
            with self._lock:
                if self._in_use + self._waiting > self.size:
                    self._last_demand = time.monotonic()  # the idle period starts when the burst ends
                self._in_use -= 1

    def _grow(self) -> None:
        """Called with the lock held, as a caller arrives: aim for as many ready children as
        there are steps running or waiting, within ``max_size``."""
        demand = self._in_use + self._waiting
        if demand > self.size:
            self._last_demand = time.monotonic()
            self._target = max(self._target, min(self.max_size, demand))

    def ready_pids(self) -> list[int]:
        with self._lock:
            return [child.pid for child in self._ready]

    def warm(self, wait_s: float = 0.0) -> bool:
        """Start filling the pool now; with ``wait_s``, wait that long for it to be full.

        True when the pool holds as many ready children as it aims for (``size``, or
        more after a burst), all of them done with their imports (e.g. at worker start-up).
        """
        self._ensure_filler()
        deadline = time.monotonic() + wait_s
        while True:
            with self._lock:
                if len(self._ready) >= self._target:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def _ensure_filler(self) -> None:
        with self._lock:
            if self._filler is None and not self._closed and self.max_size > 0:
                self._wake_r, self._wake_w = os.pipe()
                os.set_blocking(self._wake_w, False)
                self._filler = threading.Thread(target=self._fill, name="sandbox-pool-filler", daemon=True)
                self._filler.start()

    def _wake(self) -> None:
        # Under the lock: the filler closes the pipe under it too, so the fd is never a reused one.
        with self._lock:
            if self._wake_w >= 0:
                try:
                    os.write(self._wake_w, b"!")
                except BlockingIOError:
                    pass  # already full of wake-ups

    def _fill(self) -> None:
        """The filler: shrinks after ``idle_s``, keeps up to ``starts`` children starting, and
        moves each to the ready ones when it says it is ready."""
        retry_at = 0.0
        try:
            while True:
                extra: list[launch.Child] = []
                with self._lock:
                    if self._closed:
                        return
                    now = time.monotonic()
                    if self._in_use + self._waiting > self.size:
                        self._last_demand = now  # a long burst is demand until its steps end
                    if self._target > self.size and now - self._last_demand >= self.idle_s:
                        self._target = self.size
                    # Waiting callers take the next ready children; the target is what is left after them.
                    wanted = self._target + self._waiting
                    while self._ready and len(self._ready) + len(self._starting) > wanted:
                        extra.append(self._ready.popleft())
                    start = 0 if now < retry_at else min(self.starts - len(self._starting),
                                                         wanted - len(self._ready) - len(self._starting))
                    timeout = (max(0.0, self._last_demand + self.idle_s - now) if self._target > self.size
                               else None)
                    if now < retry_at:
                        timeout = min(timeout if timeout is not None else RETRY_S, retry_at - now)
                for child in extra:
                    launch.stop(child)
                for _ in range(start):
                    try:
                        child = launch.spawn(self.isolation)
                    except Exception as exc:
                        if isinstance(exc, launch.SandboxUnavailable):
                            log.warning("could not start a sandbox process: %s", exc)
                        else:
                            log.exception("could not start a sandbox process")
                        retry_at = time.monotonic() + RETRY_S
                        with self._lock:
                            self._failure = str(exc)  # waiting callers try their own, and get the error
                            self._changed.notify_all()
                        break
                    with self._lock:
                        self._failure = None
                        self._starting.append(child)
                if start > 0 and now >= retry_at:
                    continue  # look again: the deficit may have grown while these started
                self._await_ready(timeout)
        finally:
            with self._lock:
                starting, self._starting = self._starting, []
                for fd in (self._wake_r, self._wake_w):
                    os.close(fd)
                self._wake_r = self._wake_w = -1
            for child in starting:
                launch.stop(child)

    def _await_ready(self, timeout: float | None) -> None:
        """Wait for a starting child to say it is ready (or die), or a wake-up, or ``timeout``."""
        with self._lock:
            starting = list(self._starting)
            wake = self._wake_r
        by_fd = {child.process.stdout.fileno(): child for child in starting}
        readable, _, _ = select.select([wake, *by_fd], [], [], timeout)
        if wake in readable:
            os.read(wake, 4096)
        done = [by_fd[fd] for fd in readable if fd in by_fd]
        dead = [child for child in done if child.process.poll() is not None]
        with self._lock:
            for child in done:
                self._starting.remove(child)
                if child not in dead:
                    self._ready.append(child)
            self._changed.notify_all()
        for child in dead:
            log.warning("a sandbox process exited while starting (exit code %s)", child.process.returncode)
            launch.stop(child)

    def shutdown(self) -> None:
        """Stop the ready children and the filler; running steps finish on their own."""
        with self._lock:
            self._closed = True
            ready, self._ready = list(self._ready), collections.deque()
            self._changed.notify_all()
            filler = self._filler
        self._wake()
        for child in ready:
            launch.stop(child)
        if filler is not None:
            filler.join(timeout=10)
        cgroups.drain()  # so a clean shutdown leaves no step cgroup behind


class _Kill:
    """Kills one child's whole step when called (from a cancelling thread), until disarmed."""

    def __init__(self, child: launch.Child) -> None:
        self._child, self._armed, self._lock = child, True, threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            if self._armed:
                launch.kill_tree(self._child)

    def disarm(self) -> None:
        with self._lock:  # waits for a kill under way
            self._armed = False


_default_pool: SandboxPool | None = None
_default_lock = threading.Lock()


def pool_sizes(environ: Mapping[str, str]) -> tuple[int, int]:
    """CREDTOOL_SANDBOX_POOL (the idle size) and CREDTOOL_SANDBOX_POOL_MAX (what a burst may grow
    it to); ValueError naming the setting for a bad one. An unset maximum is 8, or the idle
    size if that is larger; a maximum set below the idle size is an error, not a quiet clamp."""
    size = _count(environ, POOL_SETTING, DEFAULT_POOL_SIZE)
    if environ.get(POOL_MAX_SETTING, "").strip() == "":
        return size, max(size, DEFAULT_POOL_MAX)
    most = _count(environ, POOL_MAX_SETTING, DEFAULT_POOL_MAX)
    if most < size:
        raise ValueError(f"{POOL_MAX_SETTING}={most} is below {POOL_SETTING}={size}")
    return size, most


def _count(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number (not {raw!r})") from None
    if not 0 <= value <= 256:
        raise ValueError(f"{name} must be between 0 and 256 (not {value})")
    return value


def default_pool() -> SandboxPool:
    """The process-wide pool, created at first use (so a forking server creates it per process)."""
    global _default_pool
    with _default_lock:
        if _default_pool is None:
            # Pure module: the sizes come from the environment, not Django's settings.
            size, most = pool_sizes(os.environ)
            _default_pool = SandboxPool(size, max_size=most)
            atexit.register(shutdown)
        return _default_pool


def shutdown() -> None:
    """Stop the default pool's ready children (registered with atexit when the pool is made)."""
    global _default_pool
    with _default_lock:
        pool, _default_pool = _default_pool, None
    if pool is not None:
        pool.shutdown()


def run_step(code: str, *, step_name: str, steps: Mapping[str, Any] | None = None,
             params: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
             profile: str | None = None, limits: StepLimits | None = None,
             cancel: Cancellation | None = None) -> StepResult:
    """Run one step in a fresh sandboxed interpreter from the default pool."""
    return default_pool().run_step(code, step_name=step_name, steps=steps, params=params, env=env,
                                   profile=profile, limits=limits, cancel=cancel)
