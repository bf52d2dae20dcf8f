"""A workflow's Schedule: its cron expression checked and read to people, kept as the workflow's
django-celery-beat PeriodicTask, and the scheduled run that beat asks for.

Beat (``celery -A credtool beat``, started by ``make run``) reads the PeriodicTasks from the
database and sends ``TASK_NAME`` with the workflow's id only; a worker then calls
``run_scheduled``, which submits an ordinary run with trigger "schedule".

A run still queued or running when the next is due is not started twice: that tick is
skipped (and logged), not queued behind it, so a slow workflow never builds a backlog.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from celery.schedules import crontab
from cron_descriptor import ExpressionDescriptor, Options
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from profiles.models import Profile
from runs.models import RunStatus

from . import runner
from .models import Workflow, WorkflowRun

log = logging.getLogger(__name__)

TASK_NAME = "workflows.run_scheduled"
TRIGGER = "schedule"
FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")  # cron's order


class InvalidSchedule(ValueError):
    """A cron expression that cannot be scheduled; its message is for the user."""


def parse(expression: str) -> dict[str, str]:
    """The five fields of ``expression`` by name, or ``InvalidSchedule`` saying what is wrong."""
    parts = expression.split()
    if len(parts) != 5:
        raise InvalidSchedule(f"A schedule has 5 fields (minute hour day-of-month month day-of-week), "
                              f"e.g. */15 * * * *; this has {len(parts)}.")
    fields = dict(zip(FIELDS, parts))
    try:
        _crontab(fields)
    except ValueError as exc:  # celery's parser: "Invalid end range: 61 > 59."
        raise InvalidSchedule(f"Not a valid cron expression: {exc}") from exc
    return fields


def normalise(expression: str) -> str:
    return " ".join(expression.split())


def describe(expression: str) -> str:
    """``*/15 * * * *`` -> "Every 15 minutes"."""
    options = Options()
    options.use_24hour_time_format = True
    return ExpressionDescriptor(normalise(expression), options).get_description()


def time_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def next_times(expression: str, count: int = 3, after: datetime | None = None) -> list[datetime]:
    """The next ``count`` times ``expression`` is due after ``after`` (now), in ``time_zone()``."""
    fields = parse(expression)
    current = timezone.localtime(after or timezone.now(), time_zone())
    times = []
    for _ in range(count):
        at = current
        # Due after the minute ``at`` is in: crontab counts from the last run, which is that minute.
        schedule = _crontab(fields, nowfun=lambda: at)
        current = at + schedule.remaining_estimate(at.replace(second=0, microsecond=0))
        times.append(current)
    return times


def reading(expression: str) -> dict[str, object]:
    """What the editor and the workflow page show beside a schedule: its description, next times
    and time zone; or the error (an empty expression: nothing)."""
    if not expression.strip():
        return {}
    try:
        times = next_times(expression)
    except InvalidSchedule as exc:
        return {"error": str(exc)}
    return {"description": describe(expression), "next_times": times, "time_zone": settings.TIME_ZONE}


def _crontab(fields: dict[str, str], **kwargs: object) -> crontab:
    return crontab(**fields, **kwargs)


def task_name(workflow: Workflow) -> str:
    return f"workflow-{workflow.pk}"


def sync(workflow: Workflow) -> None:
    """Make the workflow's PeriodicTask match its Schedule: created, updated, or deleted when blank.
    Call it in the transaction that saves the workflow, so both are saved or neither."""
    if not workflow.schedule:
        unschedule(workflow)
        return
    fields = parse(workflow.schedule)
    cron, _ = CrontabSchedule.objects.get_or_create(**fields, timezone=settings.TIME_ZONE)
    PeriodicTask.objects.update_or_create(
        name=task_name(workflow),
        defaults={"task": TASK_NAME, "crontab": cron, "interval": None, "args": json.dumps([workflow.pk]),
                  "kwargs": "{}", "enabled": True,
                  "description": f"Runs workflow “{workflow.name}” on its Schedule (kept by credtool; "
                                 f"edit the workflow, not this)."},
    )


def unschedule(workflow: Workflow) -> None:
    PeriodicTask.objects.filter(name=task_name(workflow)).delete()


def run_scheduled(workflow_id: int) -> WorkflowRun | None:
    """Beat's tick for a workflow: submit a run with trigger "schedule" under its Schedule profile,
    unless one is still queued or running (then skip this tick, logged). None when skipped."""
    with transaction.atomic():
        # Locked, so two ticks at once (a beat restarted late) cannot both find no run going.
        workflow = Workflow.objects.select_for_update().filter(pk=workflow_id).first()
        if workflow is None or not workflow.schedule:
            log.info("scheduled run of workflow %s: no longer scheduled; skipped", workflow_id)
            return None
        going = WorkflowRun.objects.filter(workflow=workflow, trigger=TRIGGER,
                                           status__in=(RunStatus.QUEUED, RunStatus.RUNNING)).first()
        if going is not None:
            log.info("scheduled run of workflow %s skipped: its scheduled run %s is still %s",
                     workflow_id, going.pk, going.status)
            return None
        profile = workflow.schedule_profile or Profile.objects.default()
        return runner.submit(workflow, None, trigger=TRIGGER, profile=profile)
