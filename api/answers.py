"""What a run looks like in the API.

Every answer has ``id``, ``status`` and ``url`` (where to poll it). ``status`` is
``running`` (queued or running), ``done``, ``failed`` (a failed or timed-out step
or query, a lost worker) or ``cancelled``. A finished run adds ``duration_ms``;
a workflow run its ``output`` (done) or ``error: {step, message}``; a query run
``columns``, ``rows`` and ``truncated`` of its last statement with ``results``
(one entry per statement, in order), or ``error: {stage, message}``.

Everything comes from the run's row, which the worker stored masked: what the
pages show is what the API gives, no more.
"""
from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import reverse

from integrations.models import QueryRun
from runs.models import RunStatus
from workflows.models import WorkflowRun

from .run_ids import ApiRun, public_id

STATUS = {RunStatus.SUCCEEDED: "done", RunStatus.FAILED: "failed", RunStatus.TIMED_OUT: "failed",
          RunStatus.CANCELLED: "cancelled"}


def answer(request: HttpRequest, run: ApiRun, *, pending_status: int = 200) -> JsonResponse:
    """``run`` as JSON: 200 once finished; ``pending_status`` while it is not (202 for the request that started it)."""
    run_id = public_id(run)
    body: dict[str, Any] = {"id": run_id, "status": STATUS.get(run.status, "running"),
                            "url": request.build_absolute_uri(reverse("api:run", args=[run_id]))}
    if not run.is_final:
        return JsonResponse(body, status=pending_status)
    body["profile"] = run.profile.key if run.profile is not None else None
    body["duration_ms"] = round(run.duration_ms, 1) if run.duration_ms is not None else None
    body.update(_query_fields(run) if isinstance(run, QueryRun) else _workflow_fields(run))
    return JsonResponse(body)


def _workflow_fields(run: WorkflowRun) -> dict[str, Any]:
    if run.status == RunStatus.SUCCEEDED:
        return {"output": run.output}
    return {"error": {"step": run.error_step or None, "message": run.error}}


def _query_fields(run: QueryRun) -> dict[str, Any]:
    results = [_result(each) for each in run.results]
    last = results[-1] if results else {"columns": [], "rows": [], "truncated": False}
    fields = {"columns": last["columns"], "rows": last["rows"], "truncated": last["truncated"], "results": results}
    if run.status != RunStatus.SUCCEEDED:
        fields["error"] = {"stage": run.error_stage or None, "message": run.error}
    return fields


def _result(stored: dict[str, Any]) -> dict[str, Any]:
    """One statement's result; the database's own status line ("UPDATE 2", "200 OK") is its "message"."""
    result = {"statement": stored.get("statement", ""), "columns": stored.get("columns", []),
              "rows": stored.get("rows", []), "row_count": stored.get("row_count", 0),
              "truncated": bool(stored.get("truncated")), "message": stored.get("status", "")}
    if "response" in stored:
        result["response"] = stored["response"]
    return result
