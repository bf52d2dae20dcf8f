from __future__ import annotations

import json

import pytest


class Api:
    """The Django test client, calling the API with a token (and never a session cookie)."""

    def __init__(self, client, secret: str | None) -> None:
        self.client = client
        self.secret = secret

    def _headers(self) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.secret}"} if self.secret else {}

    def post(self, url: str, body: object = None, **extra):
        data = "" if body is None else json.dumps(body)
        return self.client.post(url, data, content_type="application/json", **self._headers(), **extra)

    def get(self, url: str, **extra):
        return self.client.get(url, **self._headers(), **extra)


def token_for(user, name: str = "script") -> str:
    from api import tokens

    return tokens.create(user, name).secret


@pytest.fixture
def api(client, user) -> Api:
    """Alice's (a Builder's) token."""
    return Api(client, token_for(user))


@pytest.fixture
def runner_api(client, runner) -> Api:
    return Api(client, token_for(runner))
