"""The README's Performance chart (docs/bench.png), drawn from a results dict.

``make bench PUBLISH=1`` draws it after writing bench/results.json; to redraw it from a
results file without re-running the benchmark::

    python -m bench.chart [results.json] [out.png]   # defaults: bench/results.json, docs/bench.png

Left: each measured case beside its anchor (the raw client, the broker's no-op round trip),
p50 as a bar and p95 as a whisker, in ms on a log scale. Right: throughput, and the
GetSecretValue calls of ``multi_host`` when that group ran. Any case missing from the results
(an older run, a subset of groups) is left out rather than drawn as zero.

matplotlib is a development requirement only: nothing in the app imports this module.
"""
from __future__ import annotations

import math
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ROOT

PUBLISHED_RESULTS = ROOT / "bench" / "results.json"
PUBLISHED_CHART = ROOT / "docs" / "bench.png"

# Okabe-Ito: told apart with every common colour-vision deficiency.
ANCHOR = "#0072B2"  # blue: what the case is measured against
MEASURED = "#E69F00"  # orange: credtool's own path
PER_PROCESS = "#D55E00"  # vermillion
SHARED = "#009E73"  # bluish green
INK = "#222222"
MUTED = "#666666"
GRID = "#DDDDDD"


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    anchor: bool


# The side-by-side groups, in the README's order; the first case of each is what the rest are read against.
GROUPS: tuple[tuple[str, tuple[Case, ...]], ...] = (
    ("PostgreSQL", (
        Case("raw_psycopg", "raw psycopg", True),
        Case("static", "static", False),
        Case("dynamic_warm", "dynamic, cached", False),
        Case("dynamic_cold", "dynamic, cold", False),
    )),
    ("MySQL", (
        Case("mysql_raw", "raw PyMySQL", True),
        Case("mysql_static", "static", False),
    )),
    ("REST", (
        Case("rest_raw", "raw httpx", True),
        Case("rest_static", "static", False),
    )),
    ("Python steps", (
        Case("python_step_trivial", "trivial step", True),
        Case("python_step_boto3", "boto3 step", False),
        Case("sandbox_burst_8", "8 at once", False),
    )),
    ("Through the broker", (
        Case("celery_noop", "Celery no-op", True),
        Case("end_to_end", "query form", False),
        Case("api_query", "API query", False),
        Case("api_workflow_trivial", "API workflow", False),
    )),
)


def _p50_p95(results: dict[str, Any], key: str) -> tuple[float, float] | None:
    figures = results.get(key)
    if not isinstance(figures, dict):
        return None
    p50, p95 = figures.get("p50_ms"), figures.get("p95_ms")
    if not isinstance(p50, (int, float)) or p50 <= 0:  # a skipped case, or nothing a log axis can show
        return None
    return float(p50), float(p95) if isinstance(p95, (int, float)) and p95 >= p50 else float(p50)


def _ms(value: float) -> str:
    """Three significant figures at most, as the README's tables print them."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def caption(results: dict[str, Any]) -> str:
    m = results.get("machine") or {}
    parts = []
    if m.get("date"):
        parts.append(str(m["date"])[:10])
    cpus = m.get("cpus_usable") or m.get("cpu_count")
    if cpus:
        parts.append(f"{cpus} CPUs" + (f" ({m['cpu_model']})" if m.get("cpu_model") else ""))
    if m.get("app_database"):
        parts.append(f"app database {m['app_database']}")
    if m.get("broker"):
        parts.append(f"broker {m['broker']}")
    if m.get("postgres"):
        parts.append(f"PostgreSQL {str(m['postgres']).split(',')[0]}")
    if m.get("load_average"):
        parts.append(f"load {m['load_average'][0]:g}")
    return " · ".join(parts) or "machine not recorded"


def draw(results: dict[str, Any], path: Path) -> None:
    """Write one PNG of ``results``' side-by-side figures to ``path`` (its folder is created)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # A Figure on an Agg canvas, not pyplot: no display needed, no GUI toolkit picked up from the
    # developer's environment, and no global backend or figure state left behind in the caller's process.
    style = {"font.size": 8.5, "axes.edgecolor": "#999999", "axes.linewidth": 0.6, "xtick.color": MUTED,
             "ytick.color": INK, "xtick.major.width": 0.6, "ytick.major.size": 0}
    with matplotlib.rc_context(style):
        fig = Figure(figsize=(9, 5.4), dpi=100, facecolor="white")
        canvas = FigureCanvasAgg(fig)
        _draw_figure(fig, canvas.get_renderer(), results)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100, facecolor="white")


def _draw_figure(fig: Any, renderer: Any, results: dict[str, Any]) -> None:
    from matplotlib.patches import Patch

    grid = fig.add_gridspec(2, 2, width_ratios=(2.45, 1), height_ratios=(1, 1.25), left=0.155, right=0.975,
                            top=0.86, bottom=0.15, wspace=0.45, hspace=0.6)
    _draw_latency(fig.add_subplot(grid[:, 0]), results)
    right = [fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, 1])]
    titles = [_draw_throughput(right[0], results),
              _draw_multi_host(right[1], results.get("multi_host") or {}, results.get("detail") or {})]
    # The right panels' titles start where their labels do, not at the axes, so a long one is not cut off.
    drawn = [ax for ax in right if ax.axison]
    left = (min(ax.yaxis.get_tightbbox(renderer).x0 for ax in drawn) / fig.bbox.width if drawn
            else right[0].get_position().x0 - 0.09)  # about where labels would start
    for ax, (title, note) in zip(right, titles):
        top = ax.get_position().y1
        fig.text(left, top + 0.015, title, ha="left", va="bottom", fontsize=9, fontweight="bold", color=INK)
        if note:
            fig.text(left, top - 0.01, textwrap.fill(note, 48), ha="left", va="top", fontsize=8, color=MUTED)

    fig.text(0.012, 0.965, "credtool bench: side-by-side figures", ha="left", va="center", fontsize=11,
             fontweight="bold", color=INK)
    fig.text(0.012, 0.925, "bar: p50 · whisker: p95 · labels: p50 (p95) · ms, log scale", ha="left",
             va="center", fontsize=8.5, color=MUTED)
    legend = [Patch(color=ANCHOR, label="anchor (raw client, broker no-op)"),
              Patch(color=MEASURED, label="credtool's path")]
    fig.legend(handles=legend, loc="center right", bbox_to_anchor=(0.985, 0.945), ncol=2, frameon=False,
               fontsize=8.5, handlelength=1.2)
    fig.text(0.012, 0.02, caption(results), ha="left", fontsize=8, color=MUTED)
    if (results.get("detail") or {}).get("kinds_run") and any(k in results for k in ("mysql_raw", "rest_raw")):
        fig.text(0.012, 0.055, "MySQL and REST measured in a separate run (BENCH_GROUPS=kinds).",
                 ha="left", fontsize=8, color=MUTED)


def _draw_latency(ax: Any, results: dict[str, Any]) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    y = 0.0
    ticks: list[float] = []
    labels: list[str] = []
    headings: list[tuple[float, str]] = []
    lowest, highest = float("inf"), 0.0
    for name, cases in GROUPS:
        present = [(case, figures) for case in cases if (figures := _p50_p95(results, case.key))]
        if not present:
            continue
        headings.append((y - 0.8, name))
        for case, (p50, p95) in present:
            ax.barh(y, p50, height=0.68, color=ANCHOR if case.anchor else MEASURED, zorder=2)
            ax.plot([p50, p95], [y, y], color=INK, linewidth=0.9, zorder=3)
            ax.plot([p95, p95], [y - 0.2, y + 0.2], color=INK, linewidth=0.9, zorder=3)
            ax.text(p95 * 1.12, y, f"{_ms(p50)} ({_ms(p95)})", va="center", ha="left", fontsize=8, color=INK)
            ticks.append(y)
            labels.append(case.label)
            lowest, highest = min(lowest, p50), max(highest, p95)
            y += 1
        y += 1.1  # room for the next group's heading
    if not ticks:
        ax.text(0.0, 0.5, "no latency cases in these results", va="center", color=MUTED, transform=ax.transAxes)
        ax.set_axis_off()
        return

    ax.set_xscale("log")
    # From the decade below the fastest case, with room to the right for the slowest one's label.
    ax.set_xlim(10 ** math.floor(math.log10(lowest)) / 2, highest * 12)
    ax.set_ylim(y - 0.9, -1.45)
    ax.set_yticks(ticks, labels)
    ax.xaxis.set_major_locator(LogLocator(base=10))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(axis="x", which="major", color=GRID, linewidth=0.6, zorder=0)
    ax.set_xlabel("ms (log scale)", color=MUTED)
    ax.spines[["top", "right", "left"]].set_visible(False)
    for heading_y, name in headings:
        # In the label column, flush with the figure's other text.
        ax.annotate(name, xy=(0.012, heading_y), xycoords=("figure fraction", "data"), va="center", ha="left",
                    fontsize=8.5, fontweight="bold", color=INK)


def _draw_throughput(ax: Any, results: dict[str, Any]) -> tuple[str, str | None]:
    """Draws the closed-loop rates; returns the panel's title and, when there is nothing to draw, why."""
    clients = ((results.get("detail") or {}).get("throughput") or {}).get("clients")
    title = f"Throughput, {clients} clients" if clients else "Throughput"
    rows = [(label, float(value), colour) for label, value, colour in (
        ("Celery no-op", results.get("celery_noop_qps"), ANCHOR),
        ("query form", results.get("throughput_qps"), MEASURED)) if isinstance(value, (int, float))]
    if not rows:
        ax.set_axis_off()
        return title, "not in this run"
    top = max(value for _label, value, _colour in rows)
    for i, (_label, value, colour) in enumerate(rows):
        ax.barh(i, value, height=0.6, color=colour, zorder=2)
        ax.text(value + top * 0.03, i, f"{value:,.0f}/s", va="center", ha="left", fontsize=8, color=INK)
    ax.set_yticks(range(len(rows)), [label for label, _value, _colour in rows])
    ax.set_xlim(0, top * 1.35)
    ax.set_ylim(len(rows) - 0.4, -0.6)
    ax.set_xlabel("runs per second", color=MUTED)
    _plain(ax)
    return title, None


def _draw_multi_host(ax: Any, hosts: dict[str, Any], detail: dict[str, Any]) -> tuple[str, str | None]:
    """Draws multi_host's GetSecretValue counts, per-process cache beside shared; returns the panel's
    title and, when there is nothing to draw, why."""
    title = "GetSecretValue calls, multi_host"
    if hosts.get("skipped") or not isinstance(hosts.get("shared_calls"), (int, float)):
        ax.set_axis_off()
        # A skipped group says why (no Redis, usually); an older run has no such group at all.
        return title, f"skipped: {hosts['skipped']}" if hosts.get("skipped") else "not in this run"
    d = detail.get("multi_host") or {}
    phases = (("cold", "per_process_calls", "shared_calls"),
              ("after rotation", "per_process_rotation_calls", "shared_rotation_calls"))
    top = max(float(hosts.get(key) or 0) for _phase, *keys in phases for key in keys) or 1.0
    for i, (_phase, per_key, shared_key) in enumerate(phases):
        for offset, key, colour, label in ((-0.19, per_key, PER_PROCESS, "per-process cache"),
                                           (0.19, shared_key, SHARED, "shared cache")):
            value = hosts.get(key)
            if not isinstance(value, (int, float)):
                continue
            ax.barh(i + offset, value, height=0.36, color=colour, zorder=2, label=label if i == 0 else None)
            ax.text(value + top * 0.03, i + offset, f"{value:g}", va="center", ha="left", fontsize=8, color=INK)
    ax.set_yticks(range(len(phases)), [phase for phase, *_keys in phases])
    ax.set_xlim(0, top * 1.3)
    ax.set_ylim(len(phases) - 0.45, -0.55)
    scope = f"{d['processes']} hosts, {d['integrations']} integrations" if d.get("processes") else "all hosts"
    ax.set_xlabel(f"calls counted by moto\n{scope}", color=MUTED)
    _plain(ax)
    ax.legend(loc="lower right", frameon=False, fontsize=7.5, handlelength=1.0)
    return title, None


def _plain(ax: Any) -> None:
    ax.grid(axis="x", color=GRID, linewidth=0.6, zorder=0)
    ax.spines[["top", "right", "left"]].set_visible(False)


def main(argv: list[str]) -> int:
    import json

    if len(argv) > 2:
        print("usage: python -m bench.chart [results.json] [out.png]", file=sys.stderr)
        return 2
    source = Path(argv[0]) if argv else PUBLISHED_RESULTS
    out = Path(argv[1]) if len(argv) > 1 else PUBLISHED_CHART
    draw(json.loads(source.read_text()), out)
    print(f"drawn from {source} to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
