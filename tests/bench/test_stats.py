"""The benchmark's own arithmetic: percentiles, interleaving, the table (no services)."""
from __future__ import annotations

import pytest

from bench import stats


def test_percentiles_interpolate_between_ranks_like_numpy():
    samples = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert stats.percentile(samples, 50) == 3.0
    assert stats.percentile(samples, 0) == 1.0
    assert stats.percentile(samples, 100) == 5.0
    assert stats.percentile(samples, 95) == pytest.approx(4.8)
    assert stats.percentile([1.0, 2.0], 50) == 1.5


def test_percentile_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        stats.percentile([], 50)
    with pytest.raises(ValueError):
        stats.percentile([1.0], 101)


def test_summary_has_the_issue_keys():
    assert stats.summary([1.0, 2.0, 3.0]) == {"p50_ms": 2.0, "p95_ms": 2.9, "n": 3}


def test_ratio_is_none_when_a_side_is_missing():
    assert stats.ratio(3.0, 2.0) == 1.5
    assert stats.ratio(None, 2.0) is None
    assert stats.ratio(3.0, 0) is None


def test_round_robin_interleaves_rotates_and_drops_the_warmup():
    calls: list[str] = []

    def case(name: str):
        def run() -> float:
            calls.append(name)
            return float(len(calls))
        return run

    samples = stats.round_robin({"a": case("a"), "b": case("b"), "c": case("c")}, rounds=3, warmup=1)
    # Every round runs each case once; the first case of each round rotates.
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    assert {name: len(values) for name, values in samples.items()} == {"a": 3, "b": 3, "c": 3}
    assert samples["a"] == [6.0, 8.0, 10.0]  # the warm-up round's 1.0 is gone


def test_table_aligns_columns():
    text = stats.table([("static", "1.000"), ("end_to_end", "12.5")], ("case", "p50 ms"))
    lines = text.splitlines()
    assert lines[0] == "case        p50 ms"
    assert lines[2] == "static       1.000"
    assert lines[3] == "end_to_end    12.5"
