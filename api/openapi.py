"""The OpenAPI 3.0 document of the API, served at /api/v1/openapi.json (built per request: its
limits come from the settings)."""
from __future__ import annotations

from typing import Any

from django.conf import settings

from integrations.kinds.http_request import METHODS

from .run_ids import PATTERN

ANY: dict[str, Any] = {}
NULLABLE_TEXT = {"type": "string", "nullable": True}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str, **headers: str) -> dict[str, Any]:
    response = _json(_ref("Error"), description)
    if headers:
        response["headers"] = {name: {"description": text, "schema": {"type": "integer"}}
                               for name, text in headers.items()}
    return response


def _errors(*statuses: int) -> dict[str, Any]:
    described = {
        400: _error("The body, a parameter or ?wait= is not valid; \"error\" says which."),
        401: _error("No API token, or one that is not valid (session cookies are not accepted)."),
        403: _error("The token's role may not do this at all."),
        404: _error("No such thing that the token's user may use (as in the pages)."),
        405: _error("Another method is expected."),
        413: _error("The body is too large."),
        429: _error("The token started too many runs in the last minute.",
                    **{"Retry-After": "Seconds until it may start another."}),
    }
    return {str(status): described[status] for status in statuses}


def _wait() -> dict[str, Any]:
    return {"name": "wait", "in": "query", "required": False,
            "description": "Seconds to wait for the run to finish before answering (0: answer at once).",
            "schema": {"type": "number", "minimum": 0, "maximum": settings.API_MAX_WAIT_S}}


def _name(description: str) -> dict[str, Any]:
    return {"name": "name", "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "minLength": 1}}


def _run_id() -> dict[str, Any]:
    return {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": f"^{PATTERN}$"},
            "description": "The run's id, e.g. workflow-12 or query-34."}


def document() -> dict[str, Any]:
    rate = settings.API_RATE_LIMIT
    started = {"202": _json(_ref("Pending"), "Still running after the wait: poll its url."),
               **_errors(400, 401, 403, 404, 405, 413, 429)}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "credtool API", "version": "1",
            "description": (
                "Run workflows and ad-hoc queries as the token's user, with their role and what is shared "
                "with them. A request that starts a run waits for it (default "
                f"{settings.API_DEFAULT_WAIT_S} s, ?wait= up to {settings.API_MAX_WAIT_S} s) and answers 200 "
                "once it has finished, else 202 with a url to poll (also at once when the web process has no "
                "thread to spare for waiting). Each token may start "
                f"{rate} runs a "
                "minute. Outputs are masked as in the pages. Every error is {\"error\": \"...\"}."),
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/workflows/{name}/run": {"post": {
                "operationId": "runWorkflow", "summary": "Run a workflow",
                "parameters": [_name("The workflow's name."), _wait()],
                "requestBody": {"required": False, "content": {"application/json": {"schema": _ref("WorkflowRequest")}}},
                "responses": {"200": _json(_ref("WorkflowRun"), "The run finished (done, failed or cancelled)."),
                              **started},
            }},
            "/api/v1/integrations/{name}/query": {"post": {
                "operationId": "queryIntegration", "summary": "Run an ad-hoc query or REST request",
                "parameters": [_name("The integration's name."), _wait()],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("QueryRequest")}}},
                "responses": {"200": _json(_ref("QueryRun"), "The query finished (done, failed or cancelled)."),
                              **started},
            }},
            "/api/v1/runs/{id}": {"get": {
                "operationId": "getRun", "summary": "A run, as the request that started it answers",
                "parameters": [_run_id(), {**_wait(), "description": "Seconds to wait for it to finish (default 0)."}],
                "responses": {"200": _json({"anyOf": [_ref("WorkflowRun"), _ref("QueryRun")]},
                                           "The run: finished, or \"running\"."),
                              **_errors(400, 401, 404, 405)},
            }},
            "/api/v1/runs/{id}/cancel": {"post": {
                "operationId": "cancelRun", "summary": "Cancel a run",
                "description": "A queued run ends cancelled at once; a running one is stopped by its worker "
                               "within a moment (poll it); a finished one is left as it is.",
                "parameters": [_run_id(), {**_wait(), "description": "Seconds to wait for it to end (default 0)."}],
                "responses": {"200": _json({"anyOf": [_ref("WorkflowRun"), _ref("QueryRun")]},
                                           "The run as it now stands."),
                              **_errors(400, 401, 403, 404, 405)},
            }},
            "/api/v1/openapi.json": {"get": {
                "operationId": "openapi", "summary": "This document", "security": [],
                "responses": {"200": _json({"type": "object"}, "The OpenAPI document.")},
            }},
        },
        "components": {
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "An API token from your API tokens page: Authorization: Bearer ct_…"}},
            "schemas": _schemas(),
        },
    }


def _schemas() -> dict[str, Any]:
    run_fields = {
        "id": {"type": "string", "pattern": f"^{PATTERN}$"},
        "status": {"type": "string", "enum": ["running", "done", "failed", "cancelled"]},
        "url": {"type": "string", "description": "Where to poll the run."},
        "profile": NULLABLE_TEXT,
        "duration_ms": {"type": "number", "nullable": True},
    }
    rows = {"type": "array", "items": {"type": "array", "items": ANY}}
    columns = {"type": "array", "items": {"type": "string"}}
    return {
        "Error": {"type": "object", "required": ["error"], "properties": {
            "error": {"type": "string"},
            "fields": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}}},
        "Pending": {"type": "object", "required": ["id", "status", "url"], "properties": {
            "id": run_fields["id"], "status": {"type": "string", "enum": ["running"]}, "url": run_fields["url"]}},
        "WorkflowRequest": {"type": "object", "additionalProperties": False, "properties": {
            "params": {"type": "object", "additionalProperties": ANY,
                       "description": "Values of the workflow's parameters, as typed in the Run form (text; "
                                      "parsed as JSON where the parameter's default is JSON), or as JSON values. "
                                      "Parameters not given take their defaults."},
            "profile": {"type": "string", "description": "A profile's key; default: production."}}},
        "QueryRequest": {
            "type": "object", "additionalProperties": False,
            "description": "SQL integrations take sql; REST integrations take method, path and body. "
                           "Keys of the other kind are refused (400).",
            "properties": {
                "sql": {"type": "string", "description": "One or more statements."},
                "method": {"type": "string", "enum": list(METHODS)},
                "path": {"type": "string", "description": "Joined to the integration's base URL."},
                "body": {"description": "JSON: as text, or as a JSON value."},
                "profile": {"type": "string", "description": "A profile's key; default: production."}}},
        "WorkflowRun": {"type": "object", "required": ["id", "status", "url"], "properties": {
            **run_fields,
            "output": {"description": "The last step's output (status done), masked as in the pages."},
            "error": {"type": "object", "properties": {"step": NULLABLE_TEXT, "message": {"type": "string"}}}}},
        "Statement": {"type": "object", "properties": {
            "statement": {"type": "string"}, "columns": columns, "rows": rows, "row_count": {"type": "integer"},
            "truncated": {"type": "boolean"},
            "message": {"type": "string", "description": "The server's status line, e.g. UPDATE 2 or 200 OK."},
            "response": {"type": "object", "description": "REST integrations: the HTTP response, as the page shows it."}}},
        "QueryRun": {"type": "object", "required": ["id", "status", "url"], "properties": {
            **run_fields,
            "columns": columns, "rows": rows, "truncated": {"type": "boolean"},
            "results": {"type": "array", "items": _ref("Statement"),
                        "description": "One entry per statement, in order; columns, rows and truncated are the last one's."},
            "error": {"type": "object", "properties": {"stage": NULLABLE_TEXT, "message": {"type": "string"}}}}},
    }
