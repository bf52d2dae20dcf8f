from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_pages_carry_a_strict_content_security_policy_and_framing_rules(logged_in_client):
    response = logged_in_client.get("/integrations/")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert "<script>" not in response.content.decode()  # no inline scripts the policy would block


def test_state_changing_requests_without_a_csrf_token_are_refused(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    for url in ("/integrations/new/", "/integrations/test-connection/", "/workflows/new/"):
        assert client.post(url, {"name": "x"}, HTTP_HX_REQUEST="true").status_code == 403, url


def test_the_page_sends_the_csrf_token_to_htmx(logged_in_client):
    html = logged_in_client.get("/integrations/").content.decode()
    assert 'hx-headers=\'{"X-CSRFToken": "' in html
