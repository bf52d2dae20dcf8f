"""Which workers serve which profiles: one broker queue per profile, and heartbeats saying who is up.

A run's id goes to its profile's queue (``queue_name``; a run without a profile,
to the default profile's). A worker consumes the queues of the profiles named in
``CREDTOOL_WORKER_PROFILES``, or of every profile when that is empty, including
profiles created while it runs; so a staging worker can live in the staging
network with staging's keys only, one per environment.

Each worker keeps a ``WorkerHeartbeat`` row saying what it serves: its run
watcher renews it every third of ``RUN_LEASE_S`` and a clean shutdown deletes it;
a killed worker's row expires after ``RUN_LEASE_S``. A queued run whose profile
no live worker serves says so on its page (``unserved_message``) instead of
waiting silently, and is not sent again until a worker serves it
(``runs.lifecycle.resend_lost_runs``).

Celery's own ``-Q`` still names the exact queues of a worker started with it (the
tests' single-purpose workers); such a worker serves the profiles whose queues it
names, and ``CREDTOOL_WORKER_PROFILES`` is ignored.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Iterable

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from profiles.models import Profile

from .models import BackgroundRun, RunStatus, WorkerHeartbeat

if TYPE_CHECKING:
    from celery.app.amqp import Queues
    from celery.worker.consumer import Consumer

log = logging.getLogger(__name__)

QUEUE_PREFIX = "credtool.profile."
# Where a run goes when no profile exists at all: Celery's default queue, which a
# worker serving every profile also consumes (as it consumes what was sent there
# before profiles had queues).
NO_PROFILE_QUEUE = "celery"
# A killed worker's row is kept this long after it expired, then deleted by any worker.
FORGET_AFTER = timedelta(days=1)


def queue_name(profile_key: str | None) -> str:
    return QUEUE_PREFIX + profile_key if profile_key else NO_PROFILE_QUEUE


def default_profile_key() -> str | None:
    profile = Profile.objects.default()
    return profile.key if profile is not None else None


def queue_of(model: type[BackgroundRun], run_id: int) -> str:
    """The queue of the workers that execute this run: its profile's, else the default profile's."""
    key = model.objects.filter(pk=run_id).values_list("profile__key", flat=True).first()
    return queue_name(key or default_profile_key())


# --- Who serves what ------------------------------------------------------------

@dataclass(frozen=True)
class Coverage:
    """The profiles that live workers serve, all together."""

    every: bool = False
    keys: frozenset[str] = frozenset()
    workers: int = 0  # live worker processes, whatever they serve

    def covers(self, profile_key: str | None) -> bool:
        return self.every or (profile_key is not None and profile_key in self.keys)

    def runs_filter(self, default_key: str | None) -> Q | None:
        """Which runs (by their ``profile``) these workers execute; None: every run."""
        if self.every:
            return None
        served = Q(profile__key__in=sorted(self.keys))
        if self.covers(default_key):
            served |= Q(profile__isnull=True)
        return served


def live_coverage() -> Coverage:
    every = False
    keys: set[str] = set()
    workers = 0
    for every_profile, profile_keys in WorkerHeartbeat.objects.filter(
            expires_at__gt=timezone.now()).values_list("every_profile", "profile_keys"):
        every = every or every_profile
        keys.update(profile_keys)
        workers += 1
    return Coverage(every, frozenset(keys), workers)


NO_WORKER_MESSAGE = ("No worker is running: runs wait as Queued until one starts. `make run` starts one beside "
                     "the web server; or start one with `.venv/bin/python -m celery -A credtool worker`.")

# The pages with something that runs on a worker (a query, a workflow, Test connection, a
# credentials preview), by URL name: base.html shows NO_WORKER_MESSAGE on them when no worker is up.
PAGES_THAT_RUN = frozenset({
    "integrations:detail", "integrations:run", "integrations:create", "integrations:edit",
    "integrations:configuration_create", "integrations:configuration_edit",
    "workflows:detail", "workflows:run_detail",
})


def any_worker_running() -> bool:
    """A heartbeat that has not expired (a worker renews it every few seconds; it expires after
    ``RUN_LEASE_S``, 30 s): one query on a table of a row per worker, cheap on every page that runs things."""
    return WorkerHeartbeat.objects.filter(expires_at__gt=timezone.now()).exists()


def unserved_message(run: BackgroundRun) -> str:
    """For a queued run that no live worker would pick up: what is missing and how to start it; else ""."""
    if run.status != RunStatus.QUEUED:
        return ""
    profile = run.profile or Profile.objects.default()
    coverage = live_coverage()
    if coverage.covers(profile.key if profile is not None else None):
        return ""
    if profile is None or not coverage.workers:
        return NO_WORKER_MESSAGE
    return (f"No worker serves the {profile.name} profile: start one with "
            f"CREDTOOL_WORKER_PROFILES={profile.key}, or without it to serve every profile.")


# --- This worker ----------------------------------------------------------------

class ThisWorker:
    """The worker process this code runs in: the queues it consumes and its heartbeat."""

    def __init__(self, hostname: str, *, every: bool, keys: Iterable[str]) -> None:
        self.hostname = hostname
        self.pid = os.getpid()
        self.every = every
        self.keys = set(keys)
        self.consumer: Consumer | None = None  # set once the worker is ready
        self._lock = threading.Lock()
        self._stopped = False

    @classmethod
    def starting(cls, hostname: str, queues: Queues, queue_option: str | list[str] | None) -> ThisWorker:
        """Choose the queues of a worker that starts now, before it consumes anything.

        ``queue_option`` is Celery's ``-Q``: given, it decides alone.
        """
        wanted = settings.WORKER_PROFILES
        if queue_option:
            names = queue_option.split(",") if isinstance(queue_option, str) else list(queue_option)
            if wanted:
                log.warning("CREDTOOL_WORKER_PROFILES is ignored: -Q names this worker's queues (%s)",
                            ", ".join(names))
            return cls(hostname, every=False,
                       keys=[n.strip()[len(QUEUE_PREFIX):] for n in names if n.strip().startswith(QUEUE_PREFIX)])
        if wanted:
            queues.select([queue_name(key) for key in wanted])
            _warn_unknown(wanted)
            log.info("this worker serves the profile(s) %s only (CREDTOOL_WORKER_PROFILES)", ", ".join(wanted))
            return cls(hostname, every=False, keys=wanted)
        worker = cls(hostname, every=True, keys=())
        try:
            keys = list(Profile.objects.values_list("key", flat=True))
        except Exception:  # its watcher adds them once the database answers
            log.warning("could not list the profiles at start; their queues are added later", exc_info=True)
            keys = []
        for key in keys:
            queues.select_add(queue_name(key))
        worker.keys.update(keys)
        log.info("this worker serves every profile (%s), and profiles created later", ", ".join(keys))
        return worker

    def beat(self) -> None:
        """Say that this worker is up and what it serves (its watcher calls this every few seconds).
        A worker serving every profile first starts consuming the queues of new profiles."""
        if self.every:
            self._consume_new_profiles()
        now = timezone.now()
        with self._lock:
            if self._stopped:
                return
            WorkerHeartbeat.objects.update_or_create(hostname=self.hostname, pid=self.pid, defaults={
                "every_profile": self.every, "profile_keys": sorted(self.keys), "last_seen": now,
                "expires_at": now + timedelta(seconds=settings.RUN_LEASE_S)})
        WorkerHeartbeat.objects.filter(expires_at__lt=now - FORGET_AFTER).delete()

    def stop(self) -> None:
        """A clean shutdown: stop counting as serving at once, not when the heartbeat expires."""
        with self._lock:
            self._stopped = True
            WorkerHeartbeat.objects.filter(hostname=self.hostname, pid=self.pid).delete()

    def _consume_new_profiles(self) -> None:
        consumer = self.consumer
        if consumer is None:
            return
        new = set(Profile.objects.values_list("key", flat=True)) - self.keys
        for key in sorted(new):
            # The consumer is not thread-safe: it adds the queue in its own thread.
            consumer.call_soon(_consume, consumer, queue_name(key))
            log.info("profile %s was created: this worker now consumes its queue too", key)
        self.keys |= new


def _consume(consumer: Consumer, queue: str) -> None:
    """In the consumer's thread: consume ``queue`` now and after any reconnection."""
    consumer.app.amqp.queues.select_add(queue)
    if consumer.task_consumer is not None:
        consumer.add_task_queue(queue)


def _warn_unknown(keys: Iterable[str]) -> None:
    # A warning, not a refusal: a worker may be deployed before its profile is created, and
    # serves it from then on; a typo shows as this line and as the notice on every queued run.
    try:
        known = set(Profile.objects.values_list("key", flat=True))
    except Exception:
        log.warning("could not check CREDTOOL_WORKER_PROFILES against the profiles", exc_info=True)
        return
    unknown = [key for key in keys if key not in known]
    if unknown:
        log.warning("CREDTOOL_WORKER_PROFILES names %s, which no profile has (profiles: %s): this worker "
                    "serves nothing there until such a profile is created",
                    ", ".join(unknown), ", ".join(sorted(known)) or "none")
