"""Celery tasks: explicit names, ids only, the work delegated to execution."""
from __future__ import annotations

from celery import shared_task
from celery.signals import worker_ready

from . import execution


@worker_ready.connect
def start_run_watcher(**kwargs: object) -> None:
    # Also reaps runs left "running" by a worker that died, even when no query runs here.
    execution.cancel_watcher.start()


@shared_task(name="integrations.run_query")
def run_query(run_id: int) -> None:
    execution.execute(run_id)


@shared_task(name="integrations.check_connection")
def check_connection(check_id: int) -> None:
    execution.execute_connection_check(check_id)
