"""The benchmark's knobs, all from the environment (``BENCH_*``), with a loud failure on a bad value."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _float(name: str, default: float, minimum: float = 0.0) -> float:
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise SystemExit(f"{name}={value:g} is below the minimum {minimum:g}")
    return value


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, "") or default
    if value not in choices:
        raise SystemExit(f"{name}={value!r}: use one of {', '.join(choices)}")
    return value


GROUPS = ("queries", "kinds", "steps", "pacing", "large", "schema", "queued", "multi_host")


def _groups(raw: str) -> frozenset[str]:
    chosen = frozenset(g.strip() for g in raw.split(",") if g.strip()) or frozenset(GROUPS)
    unknown = chosen - set(GROUPS)
    if unknown:
        raise SystemExit(f"BENCH_GROUPS: unknown {', '.join(sorted(unknown))} (use {', '.join(GROUPS)})")
    return chosen


@dataclass(frozen=True)
class Config:
    scale: float  # multiplies every iteration count
    throughput_s: float  # measured seconds per throughput case (after its warm-up)
    clients: int  # concurrent clients in the throughput cases
    poll_ms: float  # how often the benchmark looks for finished runs (not counted in latencies)
    app_db: str  # "sqlite" (the embedded default) or "postgres" (a database on the target server)
    groups: frozenset[str]  # which groups of cases to run (all by default)
    var_dir: Path
    output: Path

    def n(self, base: int, minimum: int = 3) -> int:
        return max(minimum, round(base * self.scale))

    @classmethod
    def from_env(cls) -> "Config":
        return cls(
            scale=_float("BENCH_SCALE", 1.0, 0.01),
            throughput_s=_float("BENCH_THROUGHPUT_S", 10.0, 1.0),
            clients=int(_float("BENCH_CLIENTS", 16, 1)),
            poll_ms=_float("BENCH_POLL_MS", 2.0, 0.2),
            app_db=_choice("BENCH_APP_DB", "sqlite", ("sqlite", "postgres")),
            groups=_groups(os.environ.get("BENCH_GROUPS", "")),
            var_dir=Path(os.environ.get("BENCH_VAR_DIR") or ROOT / "var" / "bench"),
            # var/ (ignored by git): running the benchmark leaves the checkout clean. make bench
            # PUBLISH=1 writes the committed record, bench/results.json, instead.
            output=Path(os.environ.get("BENCH_OUTPUT") or ROOT / "var" / "bench" / "results.json"),
        )
