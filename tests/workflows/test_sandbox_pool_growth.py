"""The sandbox pool grows with a burst of concurrent steps, up to its maximum, and shrinks back when idle.

Speed is measured by ``make bench`` (``sandbox_burst_8``); these tests check counts and processes only.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from workflows.sandbox import SandboxPool, StepLimits, pool as pool_module

# Long enough that every step of a burst is still running when the last one asks for a child.
HOLD = "import time\ntime.sleep(1)\nreturn 1"


def burst(pool: SandboxPool, width: int, code: str = HOLD) -> list[int]:
    """``width`` steps asked for at the same moment; the pids they ran in."""
    gate = threading.Barrier(width)
    results: list = [None] * width

    def one(i: int) -> None:
        gate.wait()
        results[i] = pool.run_step(code, step_name="burst", limits=StepLimits(timeout_s=30))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(width)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(result.ok for result in results), [result.error for result in results]
    return [result.pid for result in results]


def eventually(check: Callable[[], bool], within_s: float = 30.0) -> bool:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def growing() -> Iterator[SandboxPool]:
    pool = SandboxPool(size=1, max_size=3, idle_s=600)
    assert pool.warm(wait_s=30)
    yield pool
    pool.shutdown()


def test_a_burst_grows_the_pool_to_its_width_and_a_wider_one_only_to_the_maximum(growing):
    assert (growing.target, len(growing.ready_pids())) == (1, 1)
    burst(growing, 2)
    assert growing.target == 2
    assert growing.warm(wait_s=30) and len(growing.ready_pids()) == 2  # ready for the next burst of 2
    burst(growing, 5)
    assert growing.target == 3
    assert growing.warm(wait_s=30)
    time.sleep(0.5)  # time for a start beyond the maximum to show up, if one were made
    assert len(growing.ready_pids()) == 3


def test_the_pool_goes_back_to_its_idle_size_after_the_idle_period():
    pool = SandboxPool(size=1, max_size=3, idle_s=600)
    try:
        assert pool.warm(wait_s=30)
        burst(pool, 3)
        assert pool.warm(wait_s=30) and len(pool.ready_pids()) == 3
        grown = set(pool.ready_pids())
        # The idle period, shortened now that the pool is full (so that no refill, however slow
        # on a busy machine, outlasts it); the pool sees it at the next step, one at a time.
        pool.idle_s = 0.2
        time.sleep(0.3)
        burst(pool, 1, "return 1")
        assert eventually(lambda: pool.target == 1 and len(pool.ready_pids()) == 1)
        stopped = grown - set(pool.ready_pids())
        assert len(stopped) >= 2 and eventually(lambda: not any(Path(f"/proc/{pid}").exists() for pid in stopped))
        time.sleep(0.5)
        assert len(pool.ready_pids()) == 1  # and it stays there: a single step is no burst
    finally:
        pool.shutdown()


def test_each_child_runs_one_step_only_while_the_pool_grows_under_bursts():
    pool = SandboxPool(size=2, max_size=6, idle_s=600)
    try:
        assert pool.warm(wait_s=30)
        pids = [pid for _ in range(3) for pid in burst(pool, 6, "return 1")]
        assert len(set(pids)) == len(pids) == 18
        assert len(set(pool.handed_out)) == len(pool.handed_out) == 18
        assert eventually(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids))  # used once, then stopped
    finally:
        pool.shutdown()


def test_a_pool_without_a_maximum_never_grows():
    # SandboxPool(size) alone keeps its size: a pool of 0 starts a child per step, as before.
    pool = SandboxPool(size=0)
    try:
        burst(pool, 2, "return 1")
        assert (pool.target, pool.ready_pids()) == (0, [])
    finally:
        pool.shutdown()


@pytest.mark.parametrize("environ, sizes", [
    ({}, (4, 8)),
    ({"CREDTOOL_SANDBOX_POOL": "2", "CREDTOOL_SANDBOX_POOL_MAX": "6"}, (2, 6)),
    ({"CREDTOOL_SANDBOX_POOL": "12"}, (12, 12)),  # an unset maximum never stands below the idle size
    ({"CREDTOOL_SANDBOX_POOL": "3", "CREDTOOL_SANDBOX_POOL_MAX": "3"}, (3, 3)),
    ({"CREDTOOL_SANDBOX_POOL_MAX": " "}, (4, 8)),
])
def test_the_pool_settings_give_the_idle_size_and_the_maximum(environ, sizes):
    assert pool_module.pool_sizes(environ) == sizes


@pytest.mark.parametrize("environ, name", [
    ({"CREDTOOL_SANDBOX_POOL_MAX": "lots"}, "CREDTOOL_SANDBOX_POOL_MAX"),
    ({"CREDTOOL_SANDBOX_POOL_MAX": "-1"}, "CREDTOOL_SANDBOX_POOL_MAX"),
    ({"CREDTOOL_SANDBOX_POOL_MAX": "2"}, "CREDTOOL_SANDBOX_POOL_MAX=2 is below CREDTOOL_SANDBOX_POOL=4"),
    ({"CREDTOOL_SANDBOX_POOL": "4.5"}, "CREDTOOL_SANDBOX_POOL"),
])
def test_a_bad_pool_setting_fails_loudly_naming_it(environ, name, monkeypatch):
    with pytest.raises(ValueError, match=name):
        pool_module.pool_sizes(environ)
    # And at the worker's first step, before any child starts.
    monkeypatch.setattr(pool_module, "_default_pool", None)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match=name):
        pool_module.default_pool()
    assert pool_module._default_pool is None


def test_a_maximum_below_the_size_is_refused():
    with pytest.raises(ValueError, match="size <= max_size"):
        SandboxPool(size=4, max_size=2)
