"""How many runs one API token may start a minute (``API_RATE_LIMIT``), counted in the database.

The count is of the token's audit events for runs it started in the last 60
seconds, so every web process sees the same count (as the login limit does,
``accounts.forms``). The token's row is locked while it is counted and the run
recorded, so two requests of one token cannot both take the last place (SQLite
serialises writers anyway).
"""
from __future__ import annotations

import math
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent

from .errors import ApiError
from .models import ApiToken

WINDOW = timedelta(seconds=60)
# The audit actions that start a run: each is one run against the limit.
RUN_ACTIONS = ("api_run_workflow", "api_query")


def admit(token: ApiToken) -> None:
    """Let ``token`` start one more run now, or refuse with 429 and ``Retry-After``. Call it in the
    transaction that records the run's audit event (with ``token_id``), so the count includes it."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("rate_limit.admit must run in the transaction that records the run")
    list(ApiToken.objects.select_for_update().filter(pk=token.pk).values_list("pk"))
    now = timezone.now()
    recent = AuditEvent.objects.filter(action__in=RUN_ACTIONS, at__gt=now - WINDOW, detail__token_id=token.pk)
    limit = settings.API_RATE_LIMIT
    times = list(recent.order_by("at").values_list("at", flat=True))
    if len(times) < limit:
        return
    # The run that must leave the window before there is room for one more.
    frees_at = times[len(times) - limit] + WINDOW
    retry_after = max(1, math.ceil((frees_at - now).total_seconds()))
    raise ApiError(429, f"Rate limit: this token may start {limit} runs a minute. Retry in {retry_after} s.",
                   headers={"Retry-After": str(retry_after)})
