"""Celery tasks: explicit names, ids only, the work delegated."""
from __future__ import annotations

from celery import shared_task

from . import execution, files


@shared_task(name="exports.run_export")
def run_export(export_id: int) -> None:
    execution.execute(export_id)


@shared_task(name="exports.purge_exports")
def purge_exports() -> int:
    """Sent by beat every hour (the PeriodicTask made by this app's migration)."""
    return files.purge()
