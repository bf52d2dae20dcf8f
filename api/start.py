"""Starting runs for a token: the same checks as the pages, the rate limit, the run and its audit event.

Whatever a token's user may not use does not exist for them (404), as in the
pages: a workflow they may not run, an integration not shared with them, a
profile they were not given. A role that cannot run anything at all is a 403.
"""
from __future__ import annotations

import json
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.log import record_event
from integrations import execution
from integrations.access import integrations_for, profiles_for
from integrations.forms import request_form_class
from integrations.models import QueryRun
from profiles.models import Profile
from workflows import access as workflow_access
from workflows import runner
from workflows.models import Workflow, WorkflowRun
from workflows.parameters import InvalidValues, parse_values

from . import payloads, rate_limit
from .errors import ApiError
from .models import ApiToken

WORKFLOW_KEYS = {"params", "profile"}


def workflow_run(request: HttpRequest, token: ApiToken, name: str) -> WorkflowRun:
    """Queue a run of the workflow ``name`` with the body's ``params``, under its ``profile``
    (else the default one)."""
    body = payloads.only(payloads.json_body(request), WORKFLOW_KEYS)
    user = token.user
    if not user.has_perm("workflows.run_workflow"):
        raise ApiError(403, "Your role does not allow running workflows.")
    workflow = Workflow.objects.filter(name=name).first() if payloads.storable_text(name) else None
    if workflow is None or workflow_access.run_refusal(user, workflow):
        raise ApiError(404, f"No workflow “{name}” that you may run.")
    key = payloads.text(body, "profile")
    profile = _profile(Profile.objects.all(), key)
    # Checked again for the profile: a Runner may be allowed some profiles only.
    if profile is None or workflow_access.run_refusal(user, workflow, profile):
        raise ApiError(404, f"You may not run “{name}” under profile “{_shown(key)}”.")
    params = _params(workflow, body.get("params"))
    with transaction.atomic():  # the count, the run and its audit event: one commit
        rate_limit.admit(token)
        run = runner.submit(workflow, user, params=params, trigger="api", profile=profile)
        record_event(request, "api_run_workflow", workflow, run=run.pk, profile=profile.key,
                     token=token.name, token_id=token.pk)
    return run


def query(request: HttpRequest, token: ApiToken, name: str) -> QueryRun:
    """Queue an ad-hoc request on the integration ``name``: the fields of its kind's request form
    (``sql``; or ``method``, ``path``, ``body``), under ``profile`` (else the default one)."""
    body = payloads.json_body(request)
    user = token.user
    if not user.has_perm("integrations.run_query"):
        raise ApiError(403, "Your role does not allow running queries.")
    integration = integrations_for(user).filter(name=name).first() if payloads.storable_text(name) else None
    if integration is None:
        raise ApiError(404, f"No integration “{name}” shared with you.")
    form_class = request_form_class(integration.kind_impl)
    payloads.only(body, set(form_class.base_fields) | {"profile"})
    key = payloads.text(body, "profile")
    # A profile the user may not use does not exist for them, as an integration not shared does not.
    profile = _profile(profiles_for(user, integration), key)
    if profile is None:
        raise ApiError(404, f"You may not query “{name}” under profile “{_shown(key)}”.")
    form = form_class(_form_data(form_class, body))
    if not form.is_valid():
        fields = {field: list(errors) for field, errors in form.errors.items()}
        raise ApiError(400, " ".join(f"{field}: {' '.join(errors)}" for field, errors in fields.items()),
                       fields=fields)
    with transaction.atomic():
        rate_limit.admit(token)
        run = execution.submit(integration, form.request_text(), user, profile)
        record_event(request, "api_query", integration, run=run.pk, sql=run.sql[:500], profile=profile.key,
                     configuration=run.configuration.label, token=token.name, token_id=token.pk)
    return run


def _shown(key: str | None) -> str:
    if key is not None:
        return key
    default = Profile.objects.default()
    return default.key if default is not None else "(none)"


def _profile(allowed: QuerySet[Profile], key: str | None) -> Profile | None:
    """The profile ``key`` names among ``allowed``; without a key, the default profile (Production)."""
    if key is None:
        default = Profile.objects.default()
        return allowed.filter(pk=default.pk).first() if default is not None else None
    return allowed.filter(key=key).first()


def _params(workflow: Workflow, given: Any) -> dict[str, Any]:
    """The run's parameters by the one rule the Run form uses (``workflows.parameters``): a string is
    the value as typed (parsed as JSON where the parameter's default is JSON); any other JSON value
    is taken as its JSON text. Parameters not given take their defaults."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise ApiError(400, "'params' must be an object of parameter names and values.")
    typed = {name: value if isinstance(value, str) else json.dumps(value) for name, value in given.items()}
    try:
        return parse_values(workflow, typed)
    except InvalidValues as exc:
        raise ApiError(400, " ".join(f"params.{name}: {message}" for name, message in exc.errors.items()),
                       fields={f"params.{name}": [message] for name, message in exc.errors.items()}) from None


def _form_data(form_class: type, body: dict[str, Any]) -> dict[str, str]:
    """The body as the request form's fields. A REST request's JSON ``body`` may be given as a
    JSON value rather than as its text."""
    data: dict[str, str] = {}
    for field in form_class.base_fields:
        value = body.get(field)
        if value is None:
            continue
        if field == "body" and not isinstance(value, str):
            value = json.dumps(value)
        elif not isinstance(value, str):
            raise ApiError(400, f"{field!r} must be a string.")
        data[field] = value
    return data
