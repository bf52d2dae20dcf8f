"""Worker start-up and shutdown: the queues it consumes, its run watcher and its heartbeat."""
from __future__ import annotations

from typing import Any

from celery.signals import celeryd_init, worker_ready, worker_shutdown

from . import lifecycle, workers


@celeryd_init.connect
def choose_queues(sender: str, instance: Any, options: dict[str, Any], **kwargs: object) -> None:
    # Before Celery applies -Q and starts consuming: the queues of the profiles this worker serves.
    lifecycle.watcher.node = workers.ThisWorker.starting(sender, instance.app.amqp.queues, options.get("queues"))


@worker_ready.connect
def start_run_watcher(sender: Any = None, **kwargs: object) -> None:
    # Also reaps runs left "running" by a worker that died, even when no run goes on here,
    # and beats at once, so pages stop saying that no worker serves this worker's profiles.
    if lifecycle.watcher.node is not None:
        lifecycle.watcher.node.consumer = sender
    lifecycle.watcher.start()


@worker_shutdown.connect
def stop_heartbeat(**kwargs: object) -> None:
    if lifecycle.watcher.node is not None:
        lifecycle.watcher.node.stop()
