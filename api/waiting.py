"""Waiting in the request for a run to finish: the run's row is polled, never the broker."""
from __future__ import annotations

import time
from typing import TypeVar

from runs import lifecycle
from runs.models import FINAL_STATUSES, BackgroundRun

R = TypeVar("R", bound=BackgroundRun)
FIRST_PAUSE_S = 0.005
LONGEST_PAUSE_S = 0.25


def until_final(run: R, wait_s: float) -> R:
    """``run`` once it has finished, or as it is after ``wait_s`` seconds (0: as it is now).

    Short pauses at first (a quick query answers in tens of milliseconds: 5 ms, then half as
    long again each time), growing to a quarter of a second; each costs one small query, and
    the whole row is read once, when it is final. A run whose worker died is reaped here, as a page polling it would."""
    deadline = time.monotonic() + wait_s
    pause = FIRST_PAUSE_S
    row = type(run).objects.filter(pk=run.pk)
    while True:
        run.status, run.lease_until = row.values_list("status", "lease_until").get()
        if run.status in FINAL_STATUSES:
            run.refresh_from_db()
            return run
        run = lifecycle.reap_if_lost(run)
        left = deadline - time.monotonic()
        if run.is_final or left <= 0:
            return run
        time.sleep(min(pause, left))
        pause = min(pause * 1.5, LONGEST_PAUSE_S)
