"""How a step's latency depends on pacing and on the sandbox pool's size.

A pool hands each pre-started child out once and starts a replacement in the
background; a child needs ~250 ms (interpreter, boto3, client models) before it
can answer. A step that finds no child waits for one it starts itself (a cold
start), or for the rest of a replacement's start-up. Steps arriving faster than
the refill therefore pay part or all of a start-up. This study runs a trivial
step on private pools of several sizes, spaced by a few gaps, and as a burst of
concurrent steps; ``cold_starts`` counts steps over 100 ms.
"""
from __future__ import annotations

import select
import threading
import time

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
