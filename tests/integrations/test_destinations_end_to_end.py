"""Where integrations may connect, end to end: Test connection and Run query on a real worker.

Metadata addresses always; the app's own database and broker where this run has them on a
network address (the server setup: PostgreSQL and Redis). The worker is not told to allow
the app's services unless the integrations' target server really is the app's own.
"""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.conf import settings

from integrations.models import ConnectionCheck, Integration, QueryRun
from tests.conftest import wait_for_final

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def app_services() -> list[tuple[str, int]]:
    found = []
    database = settings.DATABASES["default"]
    if database.get("HOST"):
        found.append((database["HOST"], int(database.get("PORT") or 5432)))
    broker = urlsplit(settings.CELERY_BROKER_URL)
    if broker.hostname:
        found.append((broker.hostname, broker.port or 6379))
    return found


TARGETS = [("169.254.169.254", 5432, "blocked address"), ("::ffff:169.254.169.254", 5432, "blocked address")] + [
    (host, port, "credtool's own database or broker") for host, port in app_services()]


@pytest.mark.parametrize("host, port, refusal", TARGETS)
def test_run_query_and_test_connection_refuse_the_destination(logged_in_client, user, host, port, refusal,
                                                             target_db):
    integration = Integration.objects.create_with_default(name="Probe", kind="postgres", created_by=user, config={
        "host": host, "port": port, "database": "postgres", "username": "postgres", "sslmode": "disable"},
        secrets={"password": "x"})
    logged_in_client.post(f"/integrations/{integration.pk}/query/", {"sql": "select 1"})
    run = wait_for_final(QueryRun, QueryRun.objects.latest("pk").pk)
    assert run.status == "failed" and run.error_stage == "connection" and refusal in run.error

    logged_in_client.post("/integrations/test-connection/", {
        "kind": "postgres", "name": "x", "statement_timeout_s": "30", "host": host, "port": str(port),
        "database": "postgres", "username": "postgres", "password": "x", "sslmode": "disable"},
        HTTP_HX_REQUEST="true")
    check = wait_for_final(ConnectionCheck, ConnectionCheck.objects.latest("pk").pk)
    assert check.status == "failed" and refusal in check.message
