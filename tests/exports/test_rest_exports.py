"""Exports of a REST API result: the response's table as it is, from a GET sent again."""
from __future__ import annotations

import csv
import io

import pytest

from devtools.localapi import ORDERS
from exports.models import ExportRun
from integrations.models import QueryRun
from tests.conftest import wait_for_final
from tests.integrations.test_rest import TOKEN, api, rest  # noqa: F401 (the same API and integration)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def recorded_run(rest, user, request: str) -> QueryRun:
    """A result as the console records one cut at the row cap."""
    return QueryRun.objects.create(
        integration=rest, configuration=rest.default_configuration, user=user, sql=request, status="succeeded",
        results=[{"statement": request, "columns": ["id"], "rows": [], "row_count": 0, "truncated": True}])


def exported(client, run: QueryRun) -> ExportRun:
    assert client.post(f"/exports/runs/{run.pk}/results/1/export/csv/", HTTP_HX_REQUEST="true").status_code == 200
    return wait_for_final(ExportRun, ExportRun.objects.latest("pk").pk)


def test_a_get_exports_the_responses_table(logged_in_client, rest, user, api):
    done = exported(logged_in_client, recorded_run(rest, user, "GET /orders"))
    assert done.status == "succeeded", done.error
    body = b"".join(logged_in_client.get(f"/exports/{done.pk}/download/").streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(body)))
    assert len(rows) == len(ORDERS) + 1 and rows[0] == list(ORDERS[0].keys())
    assert TOKEN not in body and "Authorization" in api.seen[-1].headers


def test_a_request_that_is_not_a_get_is_refused_and_not_sent(logged_in_client, rest, user, api):
    done = exported(logged_in_client, recorded_run(rest, user, 'POST /echo\n\n{"a": 1}'))
    assert done.status == "failed" and "only a GET request can be exported" in done.error
    assert not api.seen
