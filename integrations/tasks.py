"""Celery tasks: explicit names, ids only, the work delegated to execution."""
from __future__ import annotations

from celery import shared_task

from . import execution


@shared_task(name="integrations.run_query")
def run_query(run_id: int) -> None:
    execution.execute(run_id)


@shared_task(name="integrations.check_connection")
def check_connection(check_id: int) -> None:
    execution.execute_connection_check(check_id)
