"""The README's Performance chart (bench/chart.py), drawn from results dicts without running the bench."""
from __future__ import annotations

import json
from pathlib import Path

from bench import chart

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _results() -> dict:
    # An older run's shape: no multi_host, no MySQL, no sandbox_burst_8 or api_* cases.
    return {
        "raw_psycopg": {"p50_ms": 0.168, "p95_ms": 0.246, "n": 500},
        "static": {"p50_ms": 6.846, "p95_ms": 9.845, "n": 500},
        "dynamic_warm": {"p50_ms": 6.446, "p95_ms": 9.199, "n": 500},
        "python_step_trivial": {"p50_ms": 10.752, "p95_ms": 14.271, "n": 30},
        "celery_noop": {"p50_ms": 10.781, "p95_ms": 12.399, "n": 100},
        "end_to_end": {"p50_ms": 23.576, "p95_ms": 29.77, "n": 100},
        "rest_raw": {"p50_ms": 1.544, "p95_ms": 2.229, "n": 300},
        "rest_static": {"p50_ms": 7.242, "p95_ms": 10.876, "n": 300},
        "throughput_qps": 64.2,
        "celery_noop_qps": 673.9,
        "machine": {"date": "2026-11-29T11:12:44+00:00", "cpus_usable": 2, "cpu_model": "AMD EPYC",
                    "app_database": "sqlite", "broker": "filesystem://"},
        "detail": {"throughput": {"clients": 16}},
    }


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    # A chart with bars and text, not an empty canvas (a blank 900x540 PNG is a few kB).
    assert 20_000 < len(data) < 1_000_000


def test_chart_is_drawn_when_groups_are_missing(tmp_path):
    out = tmp_path / "docs" / "bench.png"
    chart.draw(_results(), out)
    _assert_png(out)


def test_chart_shows_a_skipped_multi_host_and_the_newer_cases(tmp_path):
    results = _results() | {
        "sandbox_burst_8": {"p50_ms": 41.0, "p95_ms": 88.0, "n": 40},
        "api_query": {"p50_ms": 72.0, "p95_ms": 95.0, "n": 60},
        "dynamic_cold": {"p50_ms": 68.0, "p95_ms": None, "n": 30},  # p95 missing: drawn without a whisker
        "multi_host": {"per_process_calls": None, "shared_calls": None, "skipped": "no Redis on 127.0.0.1:6379"},
    }
    out = tmp_path / "bench.png"
    chart.draw(results, out)
    _assert_png(out)


def test_chart_redraws_from_a_results_file(tmp_path):
    source, out = tmp_path / "results.json", tmp_path / "chart.png"
    source.write_text(json.dumps(_results() | {"multi_host": {
        "per_process_calls": 80, "shared_calls": 10, "per_process_rotation_calls": 80, "shared_rotation_calls": 10,
        "failed_queries": 0}}))
    assert chart.main([str(source), str(out)]) == 0
    _assert_png(out)


def test_caption_names_the_machine_and_survives_its_absence():
    assert chart.caption(_results()) == ("2026-11-29 · 2 CPUs (AMD EPYC) · app database sqlite · "
                                         "broker filesystem://")
    assert chart.caption({}) == "machine not recorded"
