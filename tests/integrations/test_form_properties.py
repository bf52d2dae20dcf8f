"""Property-based: whatever is posted to the forms, the answer is a page with errors or a clean save."""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.models import Integration
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

TEXT = st.text(max_size=300) | st.sampled_from(["", " ", "{{", "}}", "{{w.response.x}}", "/tmp/sock", "5432",
                                                 "-1", "99999999999999999999", "\x00", "é" * 50, "a" * 2000])
FIELDS = ("name", "host", "port", "database", "username", "password", "sslmode", "statement_timeout_s",
          "credentials_cache_s", "fetch_credentials", "credentials_workflow", "shared_with")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.fixed_dictionaries({}, optional={f: TEXT for f in FIELDS}))
def test_integration_form_never_fails_and_never_half_saves(logged_in_client, data):
    before = Integration.objects.count()
    response = logged_in_client.post("/integrations/new/", {"kind": "postgres", **data})
    assert response.status_code in (200, 302)
    if response.status_code == 200:
        assert Integration.objects.count() == before
        assert "errorlist" in response.content.decode()
    if response.status_code == 200 and data.get("password") and "{{" not in data["password"]:
        tag = re.search(r'<input[^>]*name="password"[^>]*>', response.content.decode()).group(0)
        assert "value=" not in tag  # a typed password is never sent back


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=TEXT, step_name=TEXT, code=TEXT, timeout=TEXT, total=st.sampled_from(["0", "1", "2", "x", "-5", "1000"]))
def test_workflow_form_never_fails_and_never_half_saves(logged_in_client, name, step_name, code, timeout, total):
    before = Workflow.objects.count()
    response = logged_in_client.post("/workflows/new/", {
        "name": name, "steps-TOTAL_FORMS": total, "steps-INITIAL_FORMS": "0", "params-TOTAL_FORMS": "0",
        "params-INITIAL_FORMS": "0", "steps-0-name": step_name, "steps-0-code": code, "steps-0-timeout_s": timeout})
    assert response.status_code in (200, 302)
    if response.status_code == 200:
        assert Workflow.objects.count() == before


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sql=TEXT)
def test_query_form_refuses_bad_input_without_a_server_error(logged_in_client, sql):
    integration = (Integration.objects.filter(name="P").first()
                   or Integration.objects.create_with_default(name="P", kind="postgres", config={}))
    response = logged_in_client.post(f"/integrations/{integration.pk}/query/", {"sql": sql}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(workflow=TEXT, preview_run=TEXT, integration=TEXT, configuration=TEXT, profiles=TEXT)
def test_preview_and_test_connection_refuse_bad_ids_without_a_server_error(logged_in_client, workflow, preview_run,
                                                                         integration, configuration, profiles):
    data = {"kind": "postgres", "credentials_workflow": workflow, "preview_run": preview_run,
            "integration": integration, "fetch_credentials": "on", "configuration": configuration,
            "profiles": profiles}
    for url in ("/integrations/preview-credentials/", "/integrations/test-connection/"):
        assert logged_in_client.post(url, data, HTTP_HX_REQUEST="true").status_code in (200, 404)
