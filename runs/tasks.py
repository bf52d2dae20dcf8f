"""Worker start-up: every worker process watches its runs' leases and the runs other workers lost."""
from __future__ import annotations

from celery.signals import worker_ready

from . import lifecycle


@worker_ready.connect
def start_run_watcher(**kwargs: object) -> None:
    # Also reaps runs left "running" by a worker that died, even when no run goes on here.
    lifecycle.watcher.start()
