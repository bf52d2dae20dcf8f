"""The Celery app. Settings live in credtool/settings.py under CELERY_*."""
from __future__ import annotations

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "credtool.settings")

app = Celery("credtool")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.task_prerun.connect
@signals.task_postrun.connect
def _tidy_database_connections(**kwargs: object) -> None:
    # As Django does around each request: drop connections past CONN_MAX_AGE or broken.
    from django.db import close_old_connections

    close_old_connections()
