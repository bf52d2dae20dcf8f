"""Summaries of timing samples (pure: no Django, no I/O)."""
from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between closest ranks (numpy's default)."""
    if not samples:
        raise ValueError("no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0-100")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(samples_ms: Sequence[float]) -> dict[str, float | int]:
    """``{"p50_ms", "p95_ms", "n"}``, rounded to microseconds."""
    return {"p50_ms": round(percentile(samples_ms, 50), 3), "p95_ms": round(percentile(samples_ms, 95), 3),
            "n": len(samples_ms)}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def round_robin(cases: dict[str, Callable[[], float]], *, rounds: int, warmup: int) -> dict[str, list[float]]:
    """Run each case once per round, rotating which goes first, so that drifting machine
    noise hits every case alike. A case returns its own duration in ms (it may do untimed
    preparation). The first ``warmup`` rounds are run and discarded."""
    names = list(cases)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_no in range(warmup + rounds):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            elapsed = cases[name]()
            if round_no >= warmup:
                samples[name].append(elapsed)
    return samples


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def table(rows: Iterable[Sequence[str]], header: Sequence[str]) -> str:
    """A plain-text table, first column left-aligned, the rest right-aligned."""
    rows = [list(map(str, r)) for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h)) for i, h in enumerate(header)]
    lines = []
    for cells in [list(map(str, header)), ["-" * w for w in widths], *rows]:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))))
    return "\n".join(lines)
