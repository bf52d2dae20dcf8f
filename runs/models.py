"""What every background run has: its state is its own row, never the broker's.

Query runs, workflow runs, credential previews and Test connection are all
``BackgroundRun``s: the web creates the row, the broker only delivers its id,
a worker claims it, renews its lease while it works and writes the outcome.
``runs.lifecycle`` owns those steps for every kind of run.
"""
from __future__ import annotations

from typing import Any, ClassVar

from django.db import models
from django.utils import timezone


class RunStatus(models.TextChoices):
    """The states of every run in the app."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Done"
    FAILED = "failed", "Failed"
    TIMED_OUT = "timed_out", "Timed out"
    CANCELLED = "cancelled", "Cancelled"


FINAL_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELLED)

WORKER_LOST = ("The worker running this stopped (it was killed or lost its connection) before it finished; "
               "it may or may not have completed.")


class BackgroundRun(models.Model):
    """A unit of work done by a worker. Subclasses name the Celery task that executes one by id."""

    # The Celery task (by name) that a worker runs with this row's id; None: not sent
    # through the broker (e.g. a credentials fetch run inside another run's task).
    task_name: ClassVar[str | None] = None

    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A running run's worker renews this while it works; once it passes, the worker
    # is presumed lost and the run is failed (runs.lifecycle.reap_lost_runs).
    lease_until = models.DateTimeField(null=True, blank=True)
    # When its id was last handed to the broker: a queued run whose message was lost
    # (broker restart without persistence, broker down at submit) is sent again.
    sent_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    # The profile it runs under: which configuration and credentials it uses, what a
    # workflow step reads as ``profile``, and which workers' queue it goes to.
    profile = models.ForeignKey("profiles.Profile", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+")

    class Meta:
        abstract = True

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def lease_expired(self) -> bool:
        return self.status == RunStatus.RUNNING and self.lease_until is not None and self.lease_until < timezone.now()

    @classmethod
    def error_fields(cls, message: str) -> dict[str, Any]:
        """The fields that hold a message for the user when the run ends without a result
        (its worker was lost, it was cancelled while queued); each model keeps its error its own way."""
        return {"error": message}


class WorkerHeartbeat(models.Model):
    """A running worker and the profiles whose queues it consumes (``runs.workers``).

    Its watcher renews the row every third of ``RUN_LEASE_S``; a clean shutdown deletes
    it. A killed worker's row stays until it expires and counts for nothing after that.
    """

    hostname = models.CharField(max_length=255)  # Celery's node name, e.g. "celery@staging-agent"
    pid = models.PositiveIntegerField()
    # Started without CREDTOOL_WORKER_PROFILES: it serves every profile, even ones created later.
    every_profile = models.BooleanField(default=False)
    profile_keys = models.JSONField(default=list)
    started_at = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField()
    # Written by the worker, like a run's lease, so a reader needs no knowledge of its settings.
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["hostname", "pid"], name="one_heartbeat_per_worker_process")]

    def __str__(self) -> str:
        serves = "every profile" if self.every_profile else ", ".join(self.profile_keys) or "no profile"
        return f"{self.hostname} (pid {self.pid}): {serves}"
