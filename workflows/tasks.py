"""Celery tasks: explicit names, ids only, the work delegated to the runner."""
from __future__ import annotations

from celery import shared_task

from . import runner


@shared_task(name="workflows.run_workflow")
def run_workflow(run_id: int) -> None:
    runner.execute(run_id)
