"""Celery tasks: explicit names, ids only, the work delegated to the runner."""
from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready, worker_shutdown

from . import runner, sandbox, schedules

log = logging.getLogger(__name__)


@worker_ready.connect
def report_sandbox(**kwargs: object) -> None:
    # Said at start-up, so an operator sees at once when steps are not isolated.
    status = sandbox.isolation_status()
    (log.info if sandbox.isolation().mode == "bubblewrap" else log.warning)("workflow sandbox: %s", status)
    sandbox.default_pool().warm()


@worker_shutdown.connect
def stop_sandbox_pool(**kwargs: object) -> None:
    sandbox.shutdown()


@shared_task(name="workflows.run_workflow")
def execute_run(run_id: int) -> None:
    runner.execute(run_id)


@shared_task(name=schedules.TASK_NAME)
def run_scheduled(workflow_id: int) -> None:
    """Sent by beat with the workflow's id (its PeriodicTask's args)."""
    schedules.run_scheduled(workflow_id)
