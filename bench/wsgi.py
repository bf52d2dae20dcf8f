"""The benchmark's WSGI application: the app unchanged, its queries on the benchmark's queue
(set at import, so that every worker process of a multi-process server has it)."""
from __future__ import annotations

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()

from bench.services import QUEUE  # noqa: E402  (Django must be set up first)
from credtool.celery import app  # noqa: E402

app.conf.task_default_queue = QUEUE
