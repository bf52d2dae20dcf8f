"""Integration steps: a workflow step that sends a request to an integration, on the worker.

A step's request is the console's (SQL, or ``METHOD path`` and a body) with
``{{params.x}}`` and ``{{stepname.output…}}`` bindings in it. The bindings are
evaluated by the safe evaluator credentials use (``workflows.bindings``, in
its step form: a name, then keys and indexes) before anything is sent; an
unknown name fails the step, naming it. Their values never become SQL text:
the request goes to the kind as a ``BoundRequest`` and each value is a bound
parameter of the driver (``$1`` for PostgreSQL, ``%s`` for PyMySQL; URL- or
JSON-encoded for REST).

From there it is the console's path, through the same functions: the
configuration for the run's profile, fetched credentials and their cache, the
rotation retry (``with_credentials``), the destinations check, read-only, the
session reset, the row cap, the integration's timeout (within the step's), a
"run_query" audit event, and cancel through the run's token.

Its output, what later steps read as ``stepname.output``: for SQL, the last
statement's result as ``{"columns", "rows" (one object per row), "truncated",
"row_count", "status"}``, capped like the console; for REST, ``{"status",
"headers", "body"}`` (the body parsed when it is JSON). A REST answer of 400 or
more fails the step, naming the status.
"""
from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from audit.log import record_event
from profiles.models import Profile
from runs.models import RunStatus
from workflows import bindings
from workflows.runner import RunContext, StepOutcome, StepSpec

from . import kinds
from .access import integrations_for, profiles_for
from .credentials import with_credentials
from .kinds import http_request, rest
from .kinds.base import BoundRequest, CancelToken, Credentials, QueryCancelled, StageError, StatementResult
from .models import Integration

PARAMS = "params"


def bound_request(template: str, params: dict[str, Any], outputs: dict[str, Any]) -> BoundRequest:
    """The step's request with each binding's value apart from the text; BindingError (naming the
    binding) for a malformed one or a name that is neither ``params`` nor an earlier step."""
    names = {PARAMS: params, **{step: {"output": output} for step, output in outputs.items()}}
    pieces, values, sources = [""], [], []
    for piece in bindings.parse(template, member=None):
        if isinstance(piece, str):
            pieces[-1] += piece
            continue
        values.append(bindings.evaluate(piece, names))
        sources.append(piece.source)
        pieces.append("")
    return BoundRequest(tuple(pieces), tuple(values), tuple(sources))


def names_refused(template: str, parameters: list[str], earlier_steps: list[str]) -> str:
    """Why the step's bindings cannot work with these parameters and earlier steps ("" if they may):
    what the editor says beside the request before anything runs."""
    try:
        pieces = bindings.parse(template, member=None)
    except bindings.BindingError as exc:
        return str(exc)
    for piece in pieces:
        if isinstance(piece, str):
            continue
        if piece.workflow == PARAMS:
            name = piece.path[0] if piece.path else None
            if name is not None and name not in parameters:
                listed = ", ".join(parameters) or "none"
                return f"{piece.source}: there is no parameter “{name}” (parameters: {listed})"
        elif piece.workflow not in earlier_steps:
            listed = ", ".join(earlier_steps) or "none"
            return (f"{piece.source}: “{piece.workflow}” is neither params nor an earlier step "
                    f"(earlier steps: {listed})")
        elif piece.path[:1] != ("output",):
            return f"{piece.source}: a step is read as {piece.workflow}.output"
    return ""


def run_step(spec: StepSpec, params: dict[str, Any], outputs: dict[str, Any], context: RunContext,
             cancel: Any) -> StepOutcome:
    started = time.perf_counter()

    def ended(status: str, message: str = "", output: Any = None, hidden: tuple[str, ...] = ()) -> StepOutcome:
        return StepOutcome(spec.name, status, output=output, error_message=message, hidden=hidden,
                           duration_ms=(time.perf_counter() - started) * 1000)

    integration = Integration.objects.filter(pk=spec.integration_id).first()
    if integration is None:
        return ended(RunStatus.FAILED, "the step's integration no longer exists")
    profile = context.profile or Profile.objects.default()
    refusal = _use_refusal(context.user, integration, profile)
    if refusal:
        return ended(RunStatus.FAILED, refusal)
    try:
        request = bound_request(spec.code, params, outputs)
    except bindings.BindingError as exc:
        return ended(RunStatus.FAILED, f"Binding failed: {exc}")
    configuration = integration.configuration_for(profile)
    kind = integration.kind_impl
    token = cancel if cancel is not None else CancelToken()
    hidden: list[str] = []

    def query(creds: Credentials) -> list[StatementResult]:
        hidden.extend(creds.hidden)
        return kind.run_query(creds, request, max_rows=settings.QUERY_MAX_ROWS,
                              timeout_s=min(spec.timeout_s, integration.statement_timeout_s), cancel=token,
                              connect_timeout=settings.QUERY_CONNECT_TIMEOUT_S, read_only=integration.read_only)

    record_event(None, "run_query", integration, actor=context.user, workflow=context.workflow_name,
                 workflow_run=context.run_id, step=spec.name, sql=request.shown[:500], profile=profile.key,
                 configuration=configuration.label)
    try:
        results = with_credentials(configuration, profile, query)
    except QueryCancelled:
        return ended(RunStatus.CANCELLED, "Cancelled while running.", hidden=tuple(hidden))
    except StageError as exc:
        return ended(RunStatus.FAILED, str(exc), hidden=tuple(hidden))
    last = results[-1]
    if last.response is not None:
        status = int(last.response.get("status") or 0)
        if status >= 400:
            return ended(RunStatus.FAILED, f"Query failed: the API answered {last.status}", hidden=tuple(hidden))
        return ended(RunStatus.SUCCEEDED, output=_http_output(last.response), hidden=tuple(hidden))
    return ended(RunStatus.SUCCEEDED, output=_sql_output(last), hidden=tuple(hidden))


def _use_refusal(user: AbstractBaseUser | None, integration: Integration, profile: Profile) -> str:
    """Checked again on the worker: sharing may have changed since the run was queued. A run with
    no user (a schedule's) was allowed by the Builder who scheduled it."""
    if user is None or profiles_for(user, integration).filter(pk=profile.pk).exists():
        return ""
    return f"the integration “{integration.name}” is not shared with {user.get_username()} under {profile.name}"


def _sql_output(result: StatementResult) -> dict[str, Any]:
    return {"columns": result.columns, "rows": [dict(zip(result.columns, row)) for row in result.rows],
            "truncated": result.truncated, "row_count": result.row_count, "status": result.status}


def _http_output(response: dict[str, Any]) -> dict[str, Any]:
    body: Any = response.get("body", "")
    if response.get("json") and not response.get("body_truncated"):
        try:
            body = json.loads(body)
        except ValueError:
            pass
    headers: dict[str, str] = {}
    for name, value in response.get("headers", []):
        headers[name.lower()] = f"{headers[name.lower()]}, {value}" if name.lower() in headers else value
    return {"status": response.get("status"), "headers": headers, "body": body}


class StepEditor:
    """What the workflow editor offers for Integration steps (``workflows.step_types``)."""

    methods = http_request.METHODS

    def choices(self, user: AbstractBaseUser | None) -> list[tuple[str, str]]:
        integrations = integrations_for(user) if user is not None else Integration.objects.all()
        return [(str(i.pk), f"{i.name} ({i.kind_impl.label})") for i in integrations.order_by("name")]

    def editor(self, integration_id: Any) -> str:
        try:
            kind = Integration.objects.filter(pk=int(integration_id)).values_list("kind", flat=True).first()
        except (TypeError, ValueError):
            return ""
        return kinds.get(kind).editor if kind else ""

    def compose(self, editor: str, fields: dict[str, Any]) -> str:
        if editor == "http":
            return http_request.HttpRequest(str(fields.get("method") or "GET"), str(fields.get("path") or ""),
                                            str(fields.get("body") or "")).text()
        return str(fields.get("sql") or "")

    def decompose(self, editor: str, request: str) -> dict[str, str]:
        if editor != "http":
            return {"sql": request}
        try:
            parsed = http_request.parse(request)
        except ValueError:
            return {"method": "GET", "path": "", "body": ""}
        return {"method": parsed.method, "path": parsed.path, "body": parsed.body}

    def problems(self, editor: str, fields: dict[str, Any], parameters: list[str],
                 earlier_steps: list[str]) -> dict[str, str]:
        if editor == "http":
            problems = {}
            if any(c in str(fields.get("path") or "") for c in "\r\n"):
                problems["path"] = "The path is one line."
            for name in ("path", "body"):
                refusal = names_refused(str(fields.get(name) or ""), parameters, earlier_steps)
                if refusal:
                    problems[name] = refusal
            body = str(fields.get("body") or "")
            if "body" not in problems and body.strip():
                problem = _json_problem(body)
                if problem:
                    problems["body"] = problem
            return problems
        sql = str(fields.get("sql") or "")
        if not sql.strip():
            return {"sql": "Write a query to run."}
        refusal = names_refused(sql, parameters, earlier_steps)
        return {"sql": refusal} if refusal else {}


def _json_problem(body: str) -> str:
    """Why the body is not JSON once each binding holds a value ("" if it is)."""
    pieces = [p if isinstance(p, str) else None for p in bindings.parse(body, member=None)]
    literal = [""]
    for piece in pieces:
        if piece is None:
            literal.append("")
        else:
            literal[-1] += piece
    text = rest.encoded(BoundRequest(("GET \n\n" + literal[0], *literal[1:]), (None,) * (len(literal) - 1)))
    try:
        json.loads(text.partition("\n\n")[2])
    except ValueError as exc:
        return f"The body is not valid JSON (with each binding as a value): {exc}"
    return ""
