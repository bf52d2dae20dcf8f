"""Health endpoints for load balancers and orchestrators, open to anyone and saying nothing else.

``/healthz``: the process is up and answering (no database, no broker: a liveness probe must not
fail because a dependency did). ``/readyz``: it can do its work, the app's database and the
broker both answer; 503 naming which does not. What went wrong goes to the log, never into the
answer: a probe's body is public.
"""
from __future__ import annotations

import logging

from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

log = logging.getLogger(__name__)

BROKER_TIMEOUT_S = 2


@never_cache
@login_not_required
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@login_not_required
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database(), "broker": _broker()}
    ready = all(state == "ok" for state in checks.values())
    return JsonResponse({"status": "ready" if ready else "not ready", **checks}, status=200 if ready else 503)


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception:
        log.warning("readyz: the app's database does not answer", exc_info=True)
        return "unreachable"


def _broker() -> str:
    from credtool.celery import app

    try:
        with app.connection_for_write(connect_timeout=BROKER_TIMEOUT_S) as broker:
            broker.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_TIMEOUT_S)
        return "ok"
    except Exception:
        log.warning("readyz: the broker does not answer", exc_info=True)
        return "unreachable"
