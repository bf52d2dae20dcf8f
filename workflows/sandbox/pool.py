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

DEFAULT_POOL_SIZE = 4  # measured: 4 absorbs back-to-back steps and bursts of 4; ~50 MB each
CANCELLED = "Cancelled while running."


class Cancellation(Protocol):
    """What ``run_step`` needs of a cancel request (``runs.lifecycle.CancelToken`` is one):
    ``cancelled`` once asked, and the callback to run, from another thread, when it is."""

    cancelled: bool

    def on_cancel(self, callback: Callable[[], None] | None) -> None: ...


class SandboxPool:
    """Up to ``size`` children kept ready; a used child is discarded and replaced in the background.

    Thread-safe: any number of threads may call ``run_step`` at once; when no
    child is ready, the caller starts its own (a cold start, ~250 ms).
    """

    def __init__(self, size: int = DEFAULT_POOL_SIZE, *, isolation: launch.Isolation | None = None) -> None:
        self.size = size
        self._isolation = isolation
        self._ready: collections.deque[launch.Child] = collections.deque()
        self._lock = threading.Lock()
        self._wanted = threading.Condition(self._lock)
        self._closed = False
        self._filler: threading.Thread | None = None
        # pids handed out, newest last (bounded): each appears once.
        self.handed_out: collections.deque[int] = collections.deque(maxlen=1000)

    @property
    def isolation(self) -> launch.Isolation:
        return self._isolation or launch.isolation()

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
            launch.stop(child)
        if cancel is not None and cancel.cancelled and not result.ok:
            # Whatever the kill made of the step (killed by a signal, no result): it was cancelled.
            return StepResult(False, stdout=result.stdout, stderr=result.stderr, duration_ms=result.duration_ms,
                              pid=result.pid, cancelled=True, error=StepError("Cancelled", CANCELLED))
        return result

    def acquire(self) -> launch.Child:
        """A started child, removed from the pool: a ready one if any, else a new one."""
        child = None
        with self._lock:
            while self._ready:
                candidate = self._ready.popleft()
                if candidate.process.poll() is None:
                    child = candidate
                    break
                launch.stop(candidate)  # died while waiting (killed from outside)
            self._wanted.notify()
        if child is None:
            child = launch.spawn(self.isolation)
        with self._lock:
            self.handed_out.append(child.pid)
        self._ensure_filler()
        return child

    def ready_pids(self) -> list[int]:
        with self._lock:
            return [child.pid for child in self._ready]

    def warm(self, wait_s: float = 0.0) -> bool:
        """Start filling the pool now; with ``wait_s``, wait that long for every child to be ready.

        True when ``size`` children have finished their imports (e.g. at worker start-up).
        """
        self._ensure_filler()
        deadline = time.monotonic() + wait_s
        while True:
            with self._lock:
                waiting = list(self._ready)
            if len(waiting) >= self.size and all(_is_ready(child) for child in waiting):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def _ensure_filler(self) -> None:
        with self._lock:
            if self._filler is None and not self._closed and self.size > 0:
                self._filler = threading.Thread(target=self._fill, name="sandbox-pool-filler", daemon=True)
                self._filler.start()

    def _fill(self) -> None:
        found = self.isolation
        while True:
            with self._lock:
                while not self._closed and len(self._ready) >= self.size:
                    self._wanted.wait()
                if self._closed:
                    return
            try:
                child = launch.spawn(found)
            except launch.SandboxUnavailable as exc:
                log.warning("could not start a sandbox process: %s", exc)
                with self._lock:
                    self._wanted.wait(timeout=5)
                continue
            except Exception:
                log.exception("could not start a sandbox process")
                with self._lock:
                    self._wanted.wait(timeout=5)  # do not spin on a broken setup
                continue
            with self._lock:
                if not self._closed:
                    self._ready.append(child)
                    continue
            launch.stop(child)  # shut down while it was starting
            return

    def shutdown(self) -> None:
        """Stop the ready children and the filler; running steps finish on their own."""
        with self._lock:
            self._closed = True
            ready, self._ready = list(self._ready), collections.deque()
            self._wanted.notify_all()
            filler = self._filler
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


def _is_ready(child: launch.Child) -> bool:
    """Has the child written its ready byte? (Looks without reading it.)"""
    readable, _, _ = select.select([child.process.stdout], [], [], 0)
    return bool(readable)


_default_pool: SandboxPool | None = None
_default_lock = threading.Lock()


def default_pool() -> SandboxPool:
    """The process-wide pool, created at first use (so a forking server creates it per process)."""
    global _default_pool
    with _default_lock:
        if _default_pool is None:
            # Pure module: the size comes from the environment, not Django's settings.
            _default_pool = SandboxPool(int(os.environ.get("CREDTOOL_SANDBOX_POOL", DEFAULT_POOL_SIZE)))
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
