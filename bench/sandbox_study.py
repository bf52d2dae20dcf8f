"""How a step's latency depends on pacing and on the sandbox pool's size.

A pool hands each pre-started child out once and starts a replacement in the
background; a child needs ~250 ms (interpreter, boto3, client models) before it
can answer. A step that finds no child waits for one it starts itself (a cold
start), or for the rest of a replacement's start-up. Steps arriving faster than
the refill therefore pay part or all of a start-up. This study runs a trivial
step on private pools of several sizes, spaced by a few gaps, and as a burst of
concurrent steps; ``cold_starts`` counts steps over 100 ms.

``burst_study`` is the pool as configured (CREDTOOL_SANDBOX_POOL, _MAX): bursts of 8
steps at once, the first on a pool that has never grown, then on one that has seen
such a burst and refilled (``sandbox_burst_8``); ``refill_study`` is how many children
to start at once; ``idle_child_memory`` is what a waiting child holds.
"""
from __future__ import annotations

import os
import select
import threading
import time
from pathlib import Path

from .stats import percentile

COLD_MS = 100.0  # a warm child answers a trivial step in ~5-15 ms; a cold start takes hundreds


def wait_full(pool, size: int, timeout: float = 30.0) -> float:
    """Wait (untimed) until ``pool`` holds ``size`` children that have finished starting; returns
    the seconds waited. (``ready_pids()`` counts a child as soon as it is spawned, while it still
    imports boto3; ``warm(wait_s=...)`` waits for their ready byte.)"""
    started = time.monotonic()
    try:
        pool.warm(wait_s=timeout)
    except TypeError:  # an older pool without warm(wait_s): look at the children's pipes ourselves
        while time.monotonic() - started < timeout:
            children = list(getattr(pool, "_ready", None) or [])
            if len(children) >= size and all(_started(child) for child in children):
                break
            time.sleep(0.005)
    return time.monotonic() - started


def _started(child) -> bool:
    readable, _, _ = select.select([child.process.stdout], [], [], 0)
    return bool(readable)


def _row(size: int, pattern: str, latencies: list[float]) -> dict:
    return {"pool_size": size, "pattern": pattern, "n": len(latencies),
            "p50_ms": round(percentile(latencies, 50), 1), "p95_ms": round(percentile(latencies, 95), 1),
            "max_ms": round(max(latencies), 1), "cold_starts": sum(1 for v in latencies if v > COLD_MS)}


def study(sizes: tuple[int, ...], gaps_ms: tuple[int, ...], steps: int, burst: int) -> list[dict]:
    from workflows.sandbox import SandboxPool, StepLimits

    rows = []
    for size in sizes:
        pool = SandboxPool(size)
        pool.warm()
        try:
            for gap in gaps_ms:
                wait_full(pool, size)
                latencies = []
                for _ in range(steps):
                    started = time.perf_counter()
                    result = pool.run_step("return 1", step_name="trivial", limits=StepLimits(timeout_s=30))
                    latencies.append((time.perf_counter() - started) * 1000)
                    if not result.ok:
                        raise RuntimeError(f"sandbox step failed: {result.error}")
                    time.sleep(gap / 1000)
                rows.append(_row(size, f"sequential, {gap} ms apart", latencies))
            wait_full(pool, size)
            latencies = []
            lock = threading.Lock()

            def one() -> None:
                started = time.perf_counter()
                pool.run_step("return 1", step_name="trivial", limits=StepLimits(timeout_s=30))
                with lock:
                    latencies.append((time.perf_counter() - started) * 1000)

            threads = [threading.Thread(target=one) for _ in range(burst)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            rows.append(_row(size, f"burst of {burst} at once", latencies))
        finally:
            pool.shutdown()
    return rows


def cold_step_ms(samples: int = 3) -> float:
    """A trivial step on a child started for it (a pool of size 0): what an empty pool costs."""
    from workflows.sandbox import SandboxPool, StepLimits

    pool = SandboxPool(0)
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        pool.run_step("return 1", step_name="trivial", limits=StepLimits(timeout_s=30))
        times.append((time.perf_counter() - started) * 1000)
    return round(percentile(times, 50), 1)


def _burst(pool, width: int) -> list[float]:
    """``width`` trivial steps asked for at the same moment; each one's latency in ms."""
    from workflows.sandbox import StepLimits

    gate = threading.Barrier(width)
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def one() -> None:
        gate.wait()
        started = time.perf_counter()
        result = pool.run_step("return 1", step_name="trivial", limits=StepLimits(timeout_s=30))
        with lock:
            latencies.append((time.perf_counter() - started) * 1000)
            if not result.ok:
                failures.append(str(result.error))

    threads = [threading.Thread(target=one) for _ in range(width)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"sandbox step failed: {failures[0]}")
    return latencies


def _stats(latencies: list[float]) -> dict:
    return {"p50_ms": round(percentile(latencies, 50), 1), "p95_ms": round(percentile(latencies, 95), 1),
            "max_ms": round(max(latencies), 1), "n": len(latencies),
            "cold_starts": sum(1 for v in latencies if v > COLD_MS)}


def burst_study(width: int = 8, bursts: int = 5, gap_s: float = 2.0) -> dict:
    """Bursts of ``width`` trivial steps on a pool sized as configured (CREDTOOL_SANDBOX_POOL, _MAX).

    The first burst meets the pool at its idle size, never grown (``first_burst``). The pool
    then refills to what that burst needed; ``bursts`` more follow, each once the pool is full
    again and ``gap_s`` later (well within its idle period, so it has not shrunk): ``warmed``,
    over all their steps, is ``sandbox_burst_8``. ``refill_s``: from a burst's end until the
    pool was full again.
    """
    from workflows.sandbox import SandboxPool, pool as pool_module

    size, most = pool_module.pool_sizes(os.environ)
    pool = SandboxPool(size, max_size=most)
    try:
        wait_full(pool, size, timeout=60)
        time.sleep(gap_s)
        first = _burst(pool, width)
        grown_to = pool.target
        warmed: list[float] = []
        refills = []
        memory = None
        for _ in range(bursts):
            refills.append(round(wait_full(pool, grown_to, timeout=60), 2))
            if memory is None:
                memory = idle_child_memory(pool)
            time.sleep(gap_s)
            warmed += _burst(pool, width)
        return {"pool_size": size, "pool_max": most, "starts_at_once": pool.starts, "grown_to": grown_to,
                "width": width, "gap_s": gap_s, "first_burst": _stats(first), "warmed": _stats(warmed),
                "refill_s": refills, "idle_child": memory}
    finally:
        pool.shutdown()


def refill_study(children: int = 8, starts: tuple[int, ...] = (1, 2, 4, 8)) -> list[dict]:
    """An empty pool of ``children`` filling up with ``starts`` children starting at once: when the
    first and the last were ready. More at once than cores only shares the cores more thinly."""
    from workflows.sandbox import SandboxPool

    rows = []
    for at_once in starts:
        pool = SandboxPool(children, starts=at_once)
        try:
            started = time.monotonic()
            pool.warm()
            first = None
            while len(pool.ready_pids()) < children and time.monotonic() - started < 60:
                if first is None and pool.ready_pids():
                    first = time.monotonic() - started
                time.sleep(0.005)
            last = time.monotonic() - started
            rows.append({"starts_at_once": at_once, "children": children,
                         "first_ready_ms": round((first if first is not None else last) * 1000),
                         "all_ready_ms": round(last * 1000)})
        finally:
            pool.shutdown()
    return rows


def idle_child_memory(pool) -> dict | None:
    """What one waiting child holds (bwrap, its init, the interpreter with boto3 imported), the
    median over the pool's ready children: RSS, and PSS (shared pages split among the children
    that share them: what each more child costs the machine)."""
    rss, pss = [], []
    for pid in pool.ready_pids():
        family = _descendants(pid) | {pid}
        kb = [_rollup(p) for p in family]
        if all(k is not None for k in kb):
            rss.append(sum(k[0] for k in kb) / 1024)
            pss.append(sum(k[1] for k in kb) / 1024)
    if not rss:
        return None
    return {"rss_mb": round(percentile(rss, 50), 1), "pss_mb": round(percentile(pss, 50), 1), "children": len(rss)}


def _rollup(pid: int) -> tuple[int, int] | None:
    """(Rss, Pss) in kB from /proc/<pid>/smaps_rollup."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    fields = {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines()[1:] if line.endswith("kB")}
    return fields.get("Rss", 0), fields.get("Pss", 0)


def _descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found
