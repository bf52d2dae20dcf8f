"""The Celery app. Settings live in credtool/settings.py under CELERY_*."""
from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "credtool.settings")

app = Celery("credtool")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
