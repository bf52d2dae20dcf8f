"""A run's id in the API: its kind and its row, ``workflow-12`` or ``query-34`` (the two kinds
have rows of their own, so a bare number would be ambiguous), and who may see it."""
from __future__ import annotations

import re
from typing import Callable

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from integrations import access as integration_access
from integrations.models import QueryRun
from workflows import access as workflow_access
from workflows.models import WorkflowRun

from .errors import ApiError

ApiRun = WorkflowRun | QueryRun
PATTERN = r"(workflow|query)-[0-9]{1,18}"
# Each kind: its model, and the runs of it that a user sees (the same rules as the pages).
KINDS: dict[str, tuple[type[ApiRun], Callable[[AbstractBaseUser], QuerySet]]] = {
    "workflow": (WorkflowRun, workflow_access.runs_for),
    "query": (QueryRun, integration_access.runs_for),
}


def public_id(run: ApiRun) -> str:
    kind = next(name for name, (model, _) in KINDS.items() if isinstance(run, model))
    return f"{kind}-{run.pk}"


def visible_run(user: AbstractBaseUser, run_id: str) -> ApiRun:
    """The run ``run_id`` names, if ``user`` may see it; a 404 otherwise (as in the pages)."""
    if not re.fullmatch(PATTERN, run_id):
        raise ApiError(404, "No such run: run ids look like workflow-12 or query-34.")
    kind, _, pk = run_id.partition("-")
    model, runs_for = KINDS[kind]
    run = runs_for(user).filter(pk=int(pk)).first()
    if run is None:
        raise ApiError(404, f"No run {run_id} that you may see.")
    return run
