"""The queued path: a no-op task's round trip, a query submitted over HTTP, and both under load.

Latencies are the server's completion time: from just before the request (or the
task's publication) to the wall-clock time the worker finished it (the run row's
``finished_at``, or the time the no-op task sends back). How the benchmark learns
of completion (a datagram, or polling the row) is not counted.
"""
from __future__ import annotations

import itertools
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from .client import Client

FINAL = frozenset({"succeeded", "failed", "cancelled"})  # runs.models.FINAL_STATUSES, without Django


class WorkerGone(RuntimeError):
    pass


def _wait(done: threading.Event, timeout: float, alive: Callable[[], bool], what: str) -> None:
    """Wait for ``done``, failing at once (not after the timeout) when the worker has exited."""
    deadline = time.monotonic() + timeout
    while not done.wait(min(0.5, max(0.0, deadline - time.monotonic()))):
        if not alive():
            raise WorkerGone(f"the worker exited while waiting for {what}")
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{what} did not finish within {timeout:g} s")


class NoopChannel:
    """Publishes ``bench.noop`` tasks and collects their completion datagrams."""

    def __init__(self, app, queue: str, alive: Callable[[], bool]) -> None:
        self._app = app
        self._alive = alive
        self._queue = queue
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[threading.Event, list[dict]]] = {}
        self._closed = False
        threading.Thread(target=self._listen, name="noop-listener", daemon=True).start()

    def _listen(self) -> None:
        while not self._closed:
            try:
                data = self._sock.recv(256)
            except OSError:
                return
            message = json.loads(data)
            with self._lock:
                entry = self._waiting.pop(message["seq"], None)
            if entry is not None:
                entry[1].append(message)
                entry[0].set()

    def _call(self, task: str, timeout: float) -> tuple[float, dict]:
        seq = next(self._seq)
        done, box = threading.Event(), []
        with self._lock:
            self._waiting[seq] = (done, box)
        started = time.time()
        self._app.send_task(task, args=[self.port, seq], queue=self._queue)
        try:
            _wait(done, timeout, self._alive, f"{task} task {seq}")
        finally:
            with self._lock:
                self._waiting.pop(seq, None)
        return started, box[0]

    def round_trip(self, timeout: float = 30) -> float:
        """Publish one no-op and wait for it; milliseconds from publication to its completion."""
        started, reply = self._call("bench.noop", timeout)
        return (reply["t"] - started) * 1000

    def probe(self) -> dict:
        """The worker's counters (see bench.tasks.probe)."""
        return self._call("bench.probe", 30)[1]["data"] or {}

    def close(self) -> None:
        self._closed = True
        self._sock.close()


class RunWatcher:
    """One thread polls the run rows the clients wait for, every ``poll_ms``."""

    def __init__(self, poll_ms: float, alive: Callable[[], bool]) -> None:
        self._interval = poll_ms / 1000
        self._alive = alive
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[threading.Event, list]] = {}
        self._stop = threading.Event()
        self.polls = 0
        self.errors: list[str] = []
        threading.Thread(target=self._loop, name="run-watcher", daemon=True).start()

    def wait(self, run_id: int, timeout: float = 30) -> tuple[float, str, str]:
        """(finished_at as epoch seconds, status, error) once the run is final."""
        done, box = threading.Event(), []
        with self._lock:
            self._waiting[run_id] = (done, box)
        try:
            _wait(done, timeout, self._alive, f"query run {run_id}")
        finally:
            with self._lock:
                self._waiting.pop(run_id, None)
        return box[0]

    def _loop(self) -> None:
        from django.db import close_old_connections

        from integrations.models import QueryRun
        from runs.models import FINAL_STATUSES

        try:
            while not self._stop.is_set():
                with self._lock:
                    ids = list(self._waiting)
                if ids:
                    self.polls += 1
                    try:
                        rows = list(QueryRun.objects.filter(pk__in=ids, status__in=FINAL_STATUSES).values_list(
                            "pk", "finished_at", "status", "error"))
                    except Exception as exc:  # e.g. SQLite busy for longer than its timeout: try again
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                        close_old_connections()
                        rows = []
                    for pk, finished_at, status, error in rows:
                        with self._lock:
                            entry = self._waiting.pop(pk, None)
                        if entry is not None:
                            entry[1].append((finished_at.timestamp(), status, error))
                            entry[0].set()
                self._stop.wait(self._interval)
        finally:
            close_old_connections()

    def close(self) -> None:
        self._stop.set()


@dataclass
class EndToEnd:
    """Submits ``sql`` to one integration over HTTP and waits for the run to be final."""

    base_url: str
    cookies: dict[str, str]
    integration_id: int
    sql: str
    watcher: RunWatcher
    failures: list[str] = field(default_factory=list)
    round_trips: int = 0
    answered_final: int = 0  # round trips whose POST answered with the result

    def client(self) -> Client:
        return Client(self.base_url, self.cookies)

    def round_trip(self, client: Client) -> float:
        started = time.time()
        run_id, status = client.submit_query(self.integration_id, self.sql)
        self.round_trips += 1
        if status in FINAL:  # the answer to the POST is the result: the browser has it now
            finished, error = time.time(), ""
            self.answered_final += 1
        else:  # as the page would poll, but without its 400 ms between polls
            finished, status, error = self.watcher.wait(run_id)
        if status != "succeeded":
            self.failures.append(f"run {run_id} {status}: {error}")
        return (finished - started) * 1000


@dataclass
class Throughput:
    completed: int
    seconds: float
    latencies_ms: list[float]
    errors: list[str]
    # CPU milliseconds per completed round trip, by process, over the measured window.
    cpu_ms_per_op: dict[str, float] = field(default_factory=dict)

    @property
    def qps(self) -> float:
        return self.completed / self.seconds


def cpu_seconds(pid: int | str) -> float:
    """User + system CPU seconds of a process and the processes it started (a web server's
    workers), as far as they are alive; ``"all"``: the whole machine's busy time."""
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        if pid == "all":
            fields = open("/proc/stat").readline().split()[1:]
            user, nice, system, idle, iowait, irq, softirq = (int(v) for v in fields[:7])
            return (user + nice + system + irq + softirq) / ticks
    except (OSError, ValueError, IndexError):
        return 0.0
    parents: dict[int, int] = {}
    used: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(entry)] = int(fields[1])
        used[int(entry)] = int(fields[11]) + int(fields[12])
    tree, grew = {int(pid)}, True
    while grew:
        more = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(used.get(p, 0) for p in tree) / ticks


def closed_loop(make_worker: Callable[[], Callable[[], float]], *, clients: int, warmup_s: float,
                measure_s: float, processes: dict[str, int | str] | None = None) -> Throughput:
    """``clients`` threads, each doing one round trip after another. Completions that fall in
    the measured window count; the warm-up before it does not, and in-flight work drains after."""
    start_at = time.monotonic() + warmup_s
    end_at = start_at + measure_s
    lock = threading.Lock()
    completed, latencies, errors = [0], [], []
    workers = [make_worker() for _ in range(clients)]

    def loop(round_trip: Callable[[], float]) -> None:
        while time.monotonic() < end_at:
            try:
                latency = round_trip()
            except WorkerGone:
                raise
            except Exception as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.05)
                continue
            now = time.monotonic()
            if start_at <= now <= end_at:
                with lock:
                    completed[0] += 1
                    latencies.append(latency)

    gone: list[WorkerGone] = []

    def guarded(round_trip: Callable[[], float]) -> None:
        try:
            loop(round_trip)
        except WorkerGone as exc:
            gone.append(exc)

    cpu: dict[str, float] = {}

    def sample_cpu() -> None:
        time.sleep(max(0.0, start_at - time.monotonic()))
        before = {name: cpu_seconds(pid) for name, pid in (processes or {}).items()}
        time.sleep(max(0.0, end_at - time.monotonic()))
        for name, pid in (processes or {}).items():
            cpu[name] = cpu_seconds(pid) - before[name]

    threads = [threading.Thread(target=guarded, args=(w,), daemon=True) for w in workers]
    sampler = threading.Thread(target=sample_cpu, daemon=True)
    sampler.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=warmup_s + measure_s + 120)
    sampler.join(timeout=5)
    if gone:
        raise gone[0]
    per_op = {name: round(seconds * 1000 / max(1, completed[0]), 2) for name, seconds in cpu.items()}
    return Throughput(completed[0], measure_s, latencies, errors, per_op)
