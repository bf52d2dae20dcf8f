"""A schema-driven run: schemathesis sends what /api/v1/openapi.json allows (and, half the time,
names that exist), through Django's WSGI app; no answer may be a 5xx or stray from the document."""
from __future__ import annotations

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.api.conftest import token_for
from tests.workflows.test_workflow_runs import make_workflow

# Transactional: the WSGI app closes and reopens connections as a server does.
pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = 30


def test_schema_driven_requests_never_get_a_server_error(user, integration, settings):
    # No worker: runs stay queued, and every wait is short.
    settings.API_DEFAULT_WAIT_S = 0
    settings.API_MAX_WAIT_S = 0.2
    make_workflow("echo", ("first", "return params.n"), parameters=[{"name": "n", "default": "5"}])
    existing = {"runWorkflow": "echo", "queryIntegration": integration.name}
    secret = token_for(user)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.definition.raw["operationId"] for op in operations} >= {"runWorkflow", "queryIntegration", "getRun"}

    statuses: set[int] = set()
    for operation in operations:
        @given(case=operation.as_strategy(), real_name=st.booleans())
        @hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None,
                             suppress_health_check=list(HealthCheck))
        def check(case, real_name: bool) -> None:
            name = existing.get(operation.definition.raw["operationId"])
            if real_name and name:
                case.path_parameters["name"] = name
            headers = {"Authorization": f"Bearer {secret}"}
            response = case.call(headers=headers)
            statuses.add(response.status_code)
            assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:500]}"
            # Not positive_data_acceptance: which params a workflow takes, and which request fields an
            # integration takes (sql, or method/path/body), depend on the named thing, so a body the
            # document allows may still be a 400 that says why.
            case.validate_response(response, headers=headers, excluded_checks=[positive_data_acceptance])

        check()
    # It reached past the checks: bodies refused, names not found, and runs started (202) or read (200).
    assert {400, 404} <= statuses and statuses & {200, 202}, statuses
