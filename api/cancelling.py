"""Cancel through the API: the same runs, rules and cancel as the pages' Cancel buttons."""
from __future__ import annotations

from typing import Callable

from django.db import models, transaction
from django.http import HttpRequest

from audit.log import record_event
from integrations.models import QueryRun
from runs import lifecycle
from workflows import runner
from workflows.models import WorkflowRun

from . import run_ids
from .errors import ApiError
from .models import ApiToken
from .run_ids import ApiRun

# Each kind: the permission its Cancel button needs, how it cancels, and what its audit event is about.
KINDS: dict[type[ApiRun], tuple[str, Callable[[ApiRun], ApiRun], Callable[[ApiRun], models.Model]]] = {
    WorkflowRun: ("workflows.run_workflow", runner.cancel, lambda run: run.workflow),
    QueryRun: ("integrations.run_query", lifecycle.request_cancel, lambda run: run.integration),
}


def cancel(request: HttpRequest, token: ApiToken, run_id: str) -> ApiRun:
    """Cancel a run the token's user sees (a Runner: their own): a queued one ends at once, a running
    one within a moment (its worker stops it); a finished one is left as it is."""
    run = run_ids.visible_run(token.user, run_id)
    permission, cancel_run, subject = KINDS[type(run)]
    if not token.user.has_perm(permission):
        raise ApiError(403, "Your role does not allow cancelling this run.")
    with transaction.atomic():
        run = cancel_run(run)
        record_event(request, "api_cancel_run", subject(run), run=run.pk, status=run.status,
                     token=token.name, token_id=token.pk)
    return run
