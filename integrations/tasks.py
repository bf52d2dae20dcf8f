"""Celery tasks: explicit names, ids only, the work delegated to execution."""
from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready

from . import execution, schema

log = logging.getLogger(__name__)


@worker_ready.connect
def warn_about_forked_pools(sender: object = None, **kwargs: object) -> None:
    pool = type(getattr(sender, "pool", None)).__module__ if sender is not None else ""
    if pool and not pool.startswith(("celery.concurrency.thread", "celery.concurrency.solo")):
        # Forked pool processes each keep their own credential cache and watcher.
        log.warning("the worker runs a %s pool: fetched credentials are cached per process, "
                    "so each process fetches them once; the threads pool shares one cache", pool)


@shared_task(name="integrations.run_query")
def run_query(run_id: int) -> None:
    execution.execute(run_id)


@shared_task(name="integrations.check_connection")
def check_connection(check_id: int) -> None:
    execution.execute_connection_check(check_id)


@shared_task(name="integrations.read_schema")
def read_schema(read_id: int) -> None:
    schema.execute(read_id)
