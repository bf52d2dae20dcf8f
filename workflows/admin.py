"""django-celery-beat's admin pages are unregistered: a workflow's Schedule is its one source
(workflows.schedules keeps the PeriodicTask), and a PeriodicTask edited there could send any
registered task with any arguments."""
from __future__ import annotations

from django.contrib import admin
from django_celery_beat.models import (ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask,
                                       SolarSchedule)

for model in (PeriodicTask, IntervalSchedule, CrontabSchedule, SolarSchedule, ClockedSchedule):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
