"""A minimal logged-in HTTP client for the app, as htmx drives it (keep-alive, CSRF header).

Cookies are kept by hand: with ``CREDTOOL_DEBUG=false`` the app marks them Secure,
which a cookie jar would not send back over the benchmark's plain loopback HTTP.
"""
from __future__ import annotations

import http.client
import re
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_RUN_PARTIAL = re.compile(r'data-status="(?P<status>\w+)" data-run-id="(?P<id>\d+)"')


class HttpError(Exception):
    pass


class Client:
    def __init__(self, base_url: str, cookies: dict[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.cookies: dict[str, str] = dict(cookies or {})
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None, raw: bytes | None = None,
                ) -> tuple[int, http.client.HTTPMessage, bytes]:
        body = urlencode(form).encode() if form is not None else raw
        sent = dict(headers or {})
        if form is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                self._conn.request(method, path, body=body, headers=sent)
                response = self._conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed an idle keep-alive connection before reading the request.
                self.close()
                if attempt == 2:
                    raise
                continue
            data = response.read()
            for value in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(value).items():
                    self.cookies[name] = morsel.value
            if response.headers.get("Connection", "").lower() == "close":
                self.close()
            return response.status, response.headers, data
        raise AssertionError("unreachable")

    def login(self, username: str, password: str) -> None:
        status, _, body = self.request("GET", "/accounts/login/")
        match = _CSRF_INPUT.search(body.decode())
        if status != 200 or not match:
            raise HttpError(f"login page: HTTP {status}")
        status, headers, _ = self.request("POST", "/accounts/login/", {
            "username": username, "password": password, "csrfmiddlewaretoken": match.group(1)})
        if status != 302 or "sessionid" not in self.cookies:
            raise HttpError(f"login failed: HTTP {status}")

    def submit_query(self, integration_id: int, sql: str) -> tuple[int, str]:
        """POST the query form as htmx does: the run's id and status from the returned partial
        (final when the query finished within the console's wait)."""
        status, _, body = self.request(
            "POST", f"/integrations/{integration_id}/query/", {"sql": sql},
            {"X-CSRFToken": self.cookies.get("csrftoken", ""), "HX-Request": "true",
             "HX-Target": "query-run", "HX-Current-URL": f"http://{self.host}:{self.port}/integrations/{integration_id}/"})
        match = _RUN_PARTIAL.search(body.decode(errors="replace"))
        if status != 200 or not match:
            raise HttpError(f"submitting a query: HTTP {status}: {body[:300]!r}")
        return int(match.group("id")), match.group("status")


class ApiClient:
    """The HTTP API as a script calls it: JSON bodies and an ``Authorization: Bearer`` token."""

    def __init__(self, base_url: str, token: str) -> None:
        self.http = Client(base_url)
        self.token = token

    def close(self) -> None:
        self.http.close()

    def post(self, path: str, payload: dict) -> dict:
        import json

        status, _, body = self.http.request("POST", path, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            raw=json.dumps(payload).encode())
        answer = json.loads(body or b"{}")
        if status != 200 or answer.get("status") not in (None, "done"):
            raise HttpError(f"POST {path}: HTTP {status}: {body[:300]!r}")
        return answer
