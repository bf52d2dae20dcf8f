"""/healthz and /readyz: open to anyone, JSON, and /readyz says which dependency does not answer."""
from __future__ import annotations

import pytest

from credtool.celery import app

pytestmark = pytest.mark.django_db


def test_healthz_answers_anyone_without_touching_a_dependency(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_readyz_checks_the_database_and_the_broker(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ready", "database": "ok", "broker": "ok"}


def test_readyz_names_an_unreachable_broker_and_nothing_about_it(client, monkeypatch):
    from kombu import Connection

    # The discard port: nothing listens there.
    monkeypatch.setattr(app, "connection_for_write", lambda **options: Connection("redis://127.0.0.1:9/0", **options))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "not ready", "database": "ok", "broker": "unreachable"}
    assert b"127.0.0.1" not in response.content


def test_readyz_names_an_unreachable_database(client, monkeypatch):
    from credtool import health

    def broken(*args, **kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr(health.connection, "cursor", broken)
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["database"] == "unreachable"


def test_only_get(client):
    assert client.post("/healthz").status_code == 405 and client.post("/readyz").status_code == 405
