"""API tokens: the page, the token shown once and stored hashed, and who a request is (or is not)."""
from __future__ import annotations

import hashlib

import pytest

from api.models import ApiToken
from audit.models import AuditEvent
from tests.api.conftest import Api, token_for

pytestmark = pytest.mark.django_db

RUN = "/api/v1/workflows/nothing/run"


def create_on_the_page(client, name: str = "deploy script") -> str:
    response = client.post("/api-tokens/", {"name": name})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    html = response.content.decode()
    assert "it will not be shown again" in html and 'data-copy="new-token"' in html
    return html.split('id="new-token" class="mono" value="')[1].split('"')[0]


def test_a_created_token_is_shown_once_and_only_its_hash_is_stored(logged_in_client, user):
    secret = create_on_the_page(logged_in_client)
    assert secret.startswith("ct_") and len(secret) > 40
    token = ApiToken.objects.get()
    assert token.user == user and token.name == "deploy script"
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    stored = [str(v) for v in ApiToken.objects.values_list(*[f.attname for f in ApiToken._meta.fields]).get()]
    assert not any(secret in value for value in stored)
    listing = logged_in_client.get("/api-tokens/").content.decode()
    assert "deploy script" in listing and token.prefix in listing and secret not in listing
    assert "Never" in listing  # last used
    event = AuditEvent.objects.get(action="api_token_create")
    assert event.detail == {"name": "deploy script"} and secret not in str(event.__dict__)


def test_the_header_links_to_the_api_tokens_page(logged_in_client):
    html = logged_in_client.get("/integrations/").content.decode()
    assert '<a href="/api-tokens/"' in html and ">API tokens</a>" in html


def test_a_token_name_is_required_and_unique_among_active_tokens(logged_in_client, user):
    html = logged_in_client.post("/api-tokens/", {"name": " "}).content.decode()
    assert "Name the token" in html and not ApiToken.objects.exists()
    create_on_the_page(logged_in_client, "ci")
    html = logged_in_client.post("/api-tokens/", {"name": "ci"}).content.decode()
    assert "You already have a token named “ci”" in html and ApiToken.objects.count() == 1


def test_last_used_is_recorded_when_a_token_is_used(client, user):
    secret = token_for(user)
    assert ApiToken.objects.get().last_used_at is None
    Api(client, secret).post(RUN)
    assert ApiToken.objects.get().last_used_at is not None


def test_a_revoked_token_is_refused(logged_in_client, client, user):
    secret = create_on_the_page(logged_in_client)
    token = ApiToken.objects.get()
    response = logged_in_client.post(f"/api-tokens/{token.pk}/revoke/")
    assert response.status_code == 302 and ApiToken.objects.get().revoked_at is not None
    listing = logged_in_client.get("/api-tokens/").content.decode()
    assert "was revoked" in listing and token.prefix not in listing
    assert AuditEvent.objects.filter(action="api_token_revoke", detail__name=token.name).exists()
    client.logout()
    response = Api(client, secret).post(RUN)
    assert response.status_code == 401 and "not valid" in response.json()["error"]


def test_another_users_token_cannot_be_revoked(client, user, runner):
    token_for(runner)
    client.force_login(user)
    assert client.post(f"/api-tokens/{ApiToken.objects.get().pk}/revoke/").status_code == 404
    assert ApiToken.objects.get().revoked_at is None


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer ct_not-a-token", "Basic YWxpY2U6cHc=", "Token x"])
def test_no_token_or_a_bad_one_is_a_json_401(client, user, header):
    token_for(user)
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.post(RUN, "{}", content_type="application/json", **extra)
    assert response.status_code == 401 and response["Content-Type"] == "application/json"
    assert response.json()["error"] and response["WWW-Authenticate"].startswith("Bearer")


def test_a_token_differing_after_its_prefix_is_refused(client, user):
    secret = token_for(user)
    forged = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    assert Api(client, forged).post(RUN).status_code == 401
    assert Api(client, secret).post(RUN).status_code == 404  # the real one gets in: no such workflow


def test_a_session_cookie_alone_is_not_accepted(logged_in_client):
    response = logged_in_client.post(RUN, "{}", content_type="application/json")
    assert response.status_code == 401 and "Session cookies are not accepted" in response.json()["error"]
    assert logged_in_client.get("/api/v1/runs/workflow-1").status_code == 401


def test_the_token_not_the_session_says_who_calls(logged_in_client, runner):
    """Alice is logged in; the request carries Rob's token: it is Rob's (a Runner's) request."""
    response = Api(logged_in_client, token_for(runner)).get("/api/v1/runs/workflow-1")
    assert response.status_code == 404


def test_an_inactive_users_token_is_refused(client, user):
    secret = token_for(user)
    user.is_active = False
    user.save()
    assert Api(client, secret).post(RUN).status_code == 401


def test_errors_under_api_are_json_never_html(api, client):
    for response, status in [
        (api.get("/api/v1/nowhere"), 404),
        (client.get("/api/"), 404),
        (api.get("/api/v1/workflows/x/run"), 405),
        (api.client.post("/api/v1/workflows/x/run", "{not json", content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {api.secret}"), 400),
        (api.post("/api/v1/workflows/x/run?wait=301"), 400),
        (api.post("/api/v1/workflows/x/run?wait=soon"), 400),
        (api.get("/api/v1/runs/42"), 404),
        (api.get("/api/v1/runs/query-999"), 404),
        (api.post("/api/v1/integrations/nothing/query", {"sql": "select 1"}), 404),
    ]:
        assert response.status_code == status, response.content
        assert response["Content-Type"] == "application/json" and "error" in response.json()


def test_a_role_that_runs_nothing_is_a_403(client, django_user_model):
    nobody = django_user_model.objects.create_user("nobody", password="x" * 12)
    response = Api(client, token_for(nobody)).post(RUN)
    assert response.status_code == 403 and "role" in response.json()["error"]


def test_the_openapi_document_describes_the_endpoints(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/api/v1/workflows/{name}/run", "/api/v1/integrations/{name}/query", "/api/v1/runs/{id}"} <= set(paths)
