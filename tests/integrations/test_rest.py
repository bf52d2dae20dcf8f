"""REST API integrations, run by a real worker against a real HTTP server (devtools.localapi)."""
from __future__ import annotations

import json

import pytest

from devtools.localapi import LocalApi
from integrations.models import ConnectionCheck, Integration, QueryRun
from tests.conftest import result, wait_for_final
from workflows.models import Step, Workflow, WorkflowRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

TOKEN = "tok-" + "a1b2c3d4e5f6"


@pytest.fixture
def api():
    server = LocalApi(secret=TOKEN)
    yield server
    server.stop()


@pytest.fixture
def rest(api, user):
    return Integration.objects.create_with_default(
        name="Orders API", kind="rest", created_by=user, statement_timeout_s=10,
        config={"base_url": api.url + "/", "auth": "bearer", "headers": "Accept: application/json", "verify_tls": True},
        secrets={"bearer_token": TOKEN})


def send(client, integration, method="GET", path="/orders", body="", timeout=30) -> QueryRun:
    response = client.post(f"/integrations/{integration.pk}/query/", {"method": method, "path": path, "body": body},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 200, response.content.decode()[:500]
    return wait_for_final(QueryRun, QueryRun.objects.latest("pk").pk, timeout)


def check(client, **values) -> ConnectionCheck:
    data = {"kind": "rest", "name": "", "statement_timeout_s": "10", "verify_tls": "on", **values}
    assert client.post("/integrations/test-connection/", data, HTTP_HX_REQUEST="true").status_code == 200
    return wait_for_final(ConnectionCheck, ConnectionCheck.objects.latest("pk").pk, timeout=20)


def test_the_form_has_the_rest_fields(logged_in_client):
    page = logged_in_client.get("/integrations/new/?kind=rest").content.decode()
    for label in ("Base URL", "Authentication", "Bearer token", "Username", "Password", "Header name", "API key",
                  "Headers", "Timeout (seconds)", "Verify TLS certificates", "Fetch credentials dynamically"):
        assert f">{label}</label>" in page, label
    for option in ("None", "Bearer token", "Basic", "API key header"):
        assert f">{option}</option>" in page, option
    import re

    assert re.search(r'<input type="checkbox" name="verify_tls"[^>]*checked', page)  # on by default
    assert ">REST API</option>" in page


def test_test_connection_and_a_refused_token(logged_in_client, api):
    ok = check(logged_in_client, base_url=api.url, auth="bearer", bearer_token=TOKEN)
    assert ok.status == "succeeded" and ok.message == f"Connected to {api.url}: 200 OK"
    refused = check(logged_in_client, base_url=api.url, auth="bearer", bearer_token="not-the-token")
    assert refused.status == "failed" and "refused the credentials: 401 Unauthorized" in refused.message
    assert "not-the-token" not in refused.message


def test_a_json_array_is_a_table_with_the_response_beside_it(logged_in_client, rest):
    finished = send(logged_in_client, rest, path="/orders?limit=3")
    assert finished.status == "succeeded", finished.error_text
    table = result(finished)
    assert table["columns"] == ["id", "item", "qty", "price", "tags", "shipped"]
    assert table["rows"][0] == [1, "apple", 3, "1.5", '["fruit"]', True]
    assert table["response"]["status"] == 200 and table["response"]["json"]
    assert finished.sql == "GET /orders?limit=3"
    page = logged_in_client.get(f"/integrations/{rest.pk}/runs/{finished.pk}/").content.decode()
    assert "200 OK" in page and "Response headers" in page and "<th>item</th>" in page
    body = b"".join(logged_in_client.get(f"/integrations/{rest.pk}/runs/{finished.pk}/csv/").streaming_content)
    assert body.decode("utf-8-sig").splitlines()[1] == '1,apple,3,1.5,"[""fruit""]",true'


def test_an_object_holding_one_array_is_a_table_too_and_text_stays_text(logged_in_client, rest):
    wrapped = send(logged_in_client, rest, path="/orders/wrapped")
    assert result(wrapped)["columns"][:2] == ["id", "item"] and result(wrapped)["row_count"] == 3
    text = send(logged_in_client, rest, path="/text")
    assert result(text)["columns"] == [] and result(text)["response"]["body"] == "plain <b>text</b>\n"
    page = logged_in_client.get(f"/integrations/{rest.pk}/runs/{text.pk}/").content.decode()
    assert "plain &lt;b&gt;text&lt;/b&gt;" in page


def test_a_json_body_is_sent_and_no_secret_reaches_the_record_or_the_page(logged_in_client, rest, api):
    finished = send(logged_in_client, rest, method="POST", path="/echo", body='{"qty": 2}')
    echoed = json.loads(result(finished)["response"]["body"])
    assert echoed["body"] == {"qty": 2} and echoed["headers"]["Content-Type"] == "application/json"
    assert api.seen[-1].headers["Authorization"] == f"Bearer {TOKEN}"  # the server got the token...
    record = json.dumps(QueryRun.objects.filter(pk=finished.pk).values().get(), default=str)
    assert TOKEN not in record  # ...the record shows it masked, even where the API echoed it
    request_headers = dict(result(finished)["response"]["request"]["headers"])
    assert request_headers["Authorization"] == "••••••••"
    assert TOKEN not in logged_in_client.get(f"/integrations/{rest.pk}/runs/{finished.pk}/").content.decode()


def test_an_invalid_json_body_is_refused_beside_the_field(logged_in_client, rest):
    response = logged_in_client.post(f"/integrations/{rest.pk}/query/",
                                     {"method": "POST", "path": "/echo", "body": "{nope"}, HTTP_HX_REQUEST="true")
    assert "The body is not valid JSON" in response.content.decode() and not QueryRun.objects.exists()


@pytest.mark.parametrize("scheme, secret, values", [
    ("basic", "ada:lovelace", {"auth": "basic", "username": "ada", "password": "lovelace"}),
    ("api_key", "k-123456", {"auth": "api_key", "header_name": "X-API-Key", "api_key": "k-123456"}),
])
def test_basic_and_api_key_authentication(logged_in_client, user, scheme, secret, values):
    server = LocalApi(auth=scheme, secret=secret)
    try:
        integration = Integration.objects.create_with_default(name=scheme, kind="rest", created_by=user, config={
            "base_url": server.url, **{k: v for k, v in values.items() if k not in ("password", "api_key")}},
            secrets={k: v for k, v in values.items() if k in ("password", "api_key")})
        assert send(logged_in_client, integration).status == "succeeded"
    finally:
        server.stop()


def test_read_only_sends_only_reads(logged_in_client, rest, api):
    rest.read_only = True
    rest.save()
    refused = send(logged_in_client, rest, method="DELETE", path="/orders/1")
    assert refused.status == "failed" and "refused on a read-only integration" in refused.error
    assert all(seen.method != "DELETE" for seen in api.seen)
    assert send(logged_in_client, rest).status == "succeeded"


def test_redirects_are_checked_and_leaving_the_origin_drops_the_credentials(logged_in_client, rest, api):
    metadata = send(logged_in_client, rest, path="/redirect?to=http://169.254.169.254/latest/meta-data/")
    assert metadata.status == "failed" and "blocked address" in metadata.error
    other = LocalApi(auth="none")
    try:
        followed = send(logged_in_client, rest, path=f"/redirect?to={other.url}/echo")
        assert followed.status == "succeeded"
        assert "Authorization" not in other.seen[-1].headers
        inside = send(logged_in_client, rest, path="/redirect?to=/orders")  # same origin: still authorised
        assert inside.status == "succeeded" and result(inside)["row_count"] == 3
    finally:
        other.stop()


def test_a_response_over_the_cap_is_cut_not_loaded(logged_in_client, rest):
    finished = send(logged_in_client, rest, path="/big?mb=12")
    response = result(finished)["response"]
    assert response["size"] == 10 * 1024 * 1024 and response["body_truncated"]


def test_no_cookie_is_kept_between_requests(logged_in_client, rest):
    send(logged_in_client, rest, path="/set-cookie")
    finished = send(logged_in_client, rest, path="/cookies")
    assert json.loads(result(finished)["response"]["body"]) == {"cookie": None}


def test_a_blank_token_is_not_kept_for_another_origin(logged_in_client, rest):
    data = {"name": rest.name, "base_url": "https://elsewhere.example.com/", "auth": "bearer", "bearer_token": "",
            "headers": "", "verify_tls": "on", "statement_timeout_s": "10"}
    page = logged_in_client.post(f"/integrations/{rest.pk}/edit/", data).content.decode()
    assert "Type the bearer token again: the base url changed" in page


GET_TOKEN = """\
import boto3, json
client = boto3.session.Session().client(
    service_name="secretsmanager", region_name="us-east-1", endpoint_url=Env.aws_endpoint_url,
    aws_access_key_id=Env.aws_access_key_id, aws_secret_access_key=Env.aws_secret_access_key)
return json.loads(client.get_secret_value(SecretId="apiToken")["SecretString"])
"""


def test_a_fetched_token_and_its_rotation(logged_in_client, api, user, secretsmanager):
    secretsmanager.create_secret(Name="apiToken", SecretString=json.dumps({"access_token": TOKEN, "tenant": "t1"}))
    try:
        workflow = Workflow.objects.create(name="getToken")
        Step.objects.create(workflow=workflow, position=0, name="fetch", code=GET_TOKEN, timeout_s=20)
        integration = Integration.objects.create_with_default(
            name="Fetched API", kind="rest", created_by=user, fetch_credentials=True, credentials_workflow=workflow,
            config={"base_url": api.url, "auth": "bearer", "bearer_token": "{{getToken.response.access_token}}",
                    "headers": "X-Tenant: {{getToken.response.tenant}}", "verify_tls": True})
        assert send(logged_in_client, integration).status == "succeeded"
        assert api.seen[-1].headers["X-Tenant"] == "t1"
        api.rotate("tok-rotated-99")
        secretsmanager.put_secret_value(SecretId="apiToken",
                                        SecretString=json.dumps({"access_token": "tok-rotated-99", "tenant": "t1"}))
        again = send(logged_in_client, integration)
        assert again.status == "succeeded", again.error_text
        assert WorkflowRun.objects.filter(workflow=workflow, trigger="credentials").count() == 2
    finally:
        secretsmanager.delete_secret(SecretId="apiToken", ForceDeleteWithoutRecovery=True)
