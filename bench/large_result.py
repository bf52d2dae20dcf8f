"""``large_result``: a 200,000-row, 5-column result through ``Postgres.run_query``.

Each measurement runs in a fresh process (``python -m bench.large_result``) so that
its peak memory is its own: the peak resident set (VmHWM, reset just before the
query through /proc/self/clear_refs) minus the resident set before it, and the
peak of Python's allocations (tracemalloc, in a separate pass because tracing
slows the fetch). ``mode`` is ``capped`` (the app's path, with ``max_rows``) or
``unbounded`` (a plain client-side cursor reading every row: the contrast).
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def measure(values: dict, sql: str, mode: str, max_rows: int, repeats: int) -> dict:
    import django

    django.setup()
    import psycopg

    from integrations.kinds import postgres
    from integrations.kinds.base import CancelToken, Credentials

    kind = postgres.Postgres()
    creds = Credentials(1, values)

    def run_once():
        if mode == "capped":
            [result] = kind.run_query(creds, sql, max_rows=max_rows, timeout_s=120, cancel=CancelToken())
            return result.row_count, result.truncated
        with psycopg.connect(host=values["host"], port=values["port"], dbname=values["database"],
                             user=values["username"], password=values["password"], sslmode=values["sslmode"],
                             context=postgres.cell_adapters()) as conn:
            rows = [list(row) for row in conn.execute(sql).fetchall()]
            return len(rows), False

    kind.run_query(creds, "select 1", max_rows=max_rows, timeout_s=30, cancel=CancelToken())  # imports, pool
    walls = []
    peak_growth_kb = []
    kept = truncated = None
    for _ in range(repeats):
        before = _rss_kb("VmRSS")
        reset = _reset_peak()
        started = time.perf_counter()
        kept, truncated = run_once()
        walls.append((time.perf_counter() - started) * 1000)
        peak = _rss_kb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_growth_kb.append(max(0, peak - before))
    tracemalloc.start()
    tracemalloc.reset_peak()
    run_once()
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "mode": mode, "max_rows": max_rows, "rows_kept": kept, "truncated": truncated,
        "wall_ms": round(statistics.median(walls), 1), "wall_ms_all": [round(w, 1) for w in walls],
        "peak_rss_growth_mb": round(max(peak_growth_kb) / 1024, 2),
        "python_alloc_peak_mb": round(traced_peak / 1024 / 1024, 2),
        "peak_from": "VmHWM" if _reset_peak() else "ru_maxrss",
    }


def run_in_subprocess(values: dict, sql: str, mode: str, max_rows: int, repeats: int, env: dict) -> dict:
    request = json.dumps({"values": values, "sql": sql, "mode": mode, "max_rows": max_rows, "repeats": repeats})
    done = subprocess.run([sys.executable, "-m", "bench.large_result"], input=request.encode(), cwd=ROOT,
                          env={**env, "CREDTOOL_LOG_LEVEL": "WARNING"}, capture_output=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"large_result ({mode}, {max_rows}) failed:\n{done.stderr.decode()[-3000:]}")
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


if __name__ == "__main__":
    request = json.loads(sys.stdin.read())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "credtool.settings")
    print(json.dumps(measure(request["values"], request["sql"], request["mode"], request["max_rows"],
                             request["repeats"])))
