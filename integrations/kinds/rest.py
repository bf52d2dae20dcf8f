"""REST APIs, through httpx.

A request is ``METHOD path`` and an optional JSON body (the "http" editor, see
http_request.py); the path is joined to the integration's **Base URL**, whose
authentication (bearer token, Basic, an API key header) and extra headers are
added by the worker, after the bindings are rendered.

Where it may go: every URL's host is resolved and checked by the worker
(``destinations.check``), and the connection goes to that very address while
TLS still checks the host's name (httpx's ``sni_hostname``): DNS cannot swap
it. Redirects are followed by hand, at most five, each to an address that
passes the same check; one that leaves the base URL's origin drops the
credentials, as browsers do. Proxies and ``.netrc`` from the worker's
environment are not used, and no cookie is kept: one user's session cookie
never reaches another's request.

What comes back: the status, the time, the headers and the body (read up to
``CREDTOOL_REST_MAX_RESPONSE_BYTES``, 10 MB, then cut), pretty-printed when it
is JSON, and a JSON array of objects (or an object holding one) as a table,
with the same row cap and CSV as SQL. A 401 or 403 is a refused login: with
fetched credentials the worker refetches them once and retries. Read-only
integrations send GET, HEAD and OPTIONS only.

Bound values (an Integration step's ``{{params.q}}``, a ``BoundRequest``) are
encoded for where they go: URL-encoded in the path and the query string (a
value never adds a path segment or a query parameter), JSON-encoded in the body
(a whole JSON value outside quotes, the string's escaped text inside them).
"""
from __future__ import annotations

import base64
import http.cookiejar
import ipaddress
import json
import os
import re
import threading
import time
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import httpx

from credtool.masking import MASK, is_secret_key, mask_secrets, mask_text

from .. import destinations
from .base import (BoundRequest, CancelToken, Credentials, Exported, FieldSpec, Kind, QueryCancelled, RowWriter,
                   StageError, StatementResult)
from .deadlines import deadlines
from .http_request import READ_METHODS, HttpRequest, parse
from .registry import register

AUTH = (("none", "None"), ("bearer", "Bearer token"), ("basic", "Basic"), ("api_key", "API key header"))
MAX_REDIRECTS = 5
REDIRECTS = {301, 302, 303, 307, 308}
# What a run keeps of a body to show; the download is bounded by MAX_RESPONSE_BYTES.
SHOWN_BODY_CHARS = 256 * 1024
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def max_response_bytes() -> int:
    # Pure setting read here, not in settings.py: only the worker's REST requests need it.
    return int(os.environ.get("CREDTOOL_REST_MAX_RESPONSE_BYTES") or 10 * 1024 * 1024)


class _Clients:
    """One pooled client per credentials (their fingerprint and TLS choice); none keeps cookies."""

    def __init__(self) -> None:
        self._clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()

    def get(self, key: str, verify: bool) -> httpx.Client:
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                refuse_all = http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
                client = httpx.Client(verify=verify, follow_redirects=False, trust_env=False,
                                      cookies=http.cookiejar.CookieJar(policy=refuse_all))
                if len(self._clients) > 64:  # credentials rotate: old clients go
                    for old in list(self._clients.values())[:32]:
                        old.close()
                    self._clients = dict(list(self._clients.items())[32:])
                self._clients[key] = client
            return client


_clients = _Clients()


@register
class RestApi(Kind):
    slug = "rest"
    label = "REST API"
    editor = "http"
    request_placeholder = "/users?limit=10"
    request_help = "The path is joined to the base URL; the body is JSON."
    timeout_label = "Timeout (seconds)"
    noop_query = "GET "
    secret_destination_fields = ("base_url",)
    fields = (
        FieldSpec("base_url", "Base URL", placeholder="https://api.example.com/v1",
                  help_text="Every request's path is joined to it."),
        FieldSpec("auth", "Authentication", type="choice", default="none", choices=AUTH),
        FieldSpec("bearer_token", "Bearer token", required=False, secret=True,
                  help_text="Sent as Authorization: Bearer …"),
        FieldSpec("username", "Username", required=False, help_text="For Basic authentication."),
        FieldSpec("password", "Password", required=False, secret=True),
        FieldSpec("header_name", "Header name", required=False, placeholder="X-API-Key",
                  help_text="The header that carries the API key."),
        FieldSpec("api_key", "API key", required=False, secret=True),
        FieldSpec("headers", "Headers", type="lines", required=False, placeholder="Accept: application/json",
                  help_text="Extra headers, one “Name: value” a line; values may hold bindings."),
        FieldSpec("verify_tls", "Verify TLS certificates", type="boolean", default=True,
                  help_text="Turn off only for a server with a self-signed certificate you trust."),
    )

    def summary(self, config: dict[str, Any]) -> str:
        auth = dict(AUTH).get(str(config.get("auth") or "none"), "")
        return f"{config.get('base_url', '')}" + (f" · {auth}" if auth and auth != "None" else "")

    def destination_text(self, name: str, value: Any) -> str:
        if name != "base_url":
            return super().destination_text(name, value)
        try:
            return _origin(str(value or ""))
        except ValueError:
            return str(value or "")

    def validate(self, values: dict[str, Any]) -> dict[str, str]:
        errors: dict[str, str] = {}
        base = str(values.get("base_url") or "")
        try:
            _origin(base)
        except ValueError as exc:
            errors["base_url"] = str(exc)
        try:
            _extra_headers(str(values.get("headers") or ""))
        except ValueError as exc:
            errors["headers"] = str(exc)
        name = str(values.get("header_name") or "")
        if values.get("auth") == "api_key" and not _HEADER_NAME.match(name):
            errors["header_name"] = "Enter the header's name, e.g. X-API-Key."
        return errors

    def test_connection(self, creds: Credentials, *, connect_timeout: int = 5) -> str:
        """Any answer of the base URL but a refusal of the credentials means the API is reachable."""
        exchange = self._exchange(creds, HttpRequest("GET", ""), timeout_s=max(connect_timeout, 10),
                                  connect_timeout=connect_timeout, cancel=CancelToken())
        if exchange.status in (401, 403):
            raise StageError("connection", f"the API refused the credentials: {exchange.status} {exchange.reason}",
                             auth_failure=True)
        return f"Connected to {_origin(str(creds.values.get('base_url')))}: {exchange.status} {exchange.reason}"

    def run_query(self, creds: Credentials, request: str | BoundRequest, *, max_rows: int, timeout_s: int,
                  cancel: CancelToken, connect_timeout: int = 5, read_only: bool = False) -> list[StatementResult]:
        try:
            parsed = parse(request if isinstance(request, str) else encoded(request))
        except ValueError as exc:
            raise StageError("query", str(exc)) from None
        if read_only and parsed.method not in READ_METHODS:
            raise StageError("query", f"{parsed.method} is refused on a read-only integration: it sends only "
                                      f"{', '.join(READ_METHODS)} requests")
        exchange = self._exchange(creds, parsed, timeout_s=timeout_s, connect_timeout=connect_timeout, cancel=cancel)
        result = exchange.result(max_rows, self, creds)
        if exchange.status in (401, 403):
            raise StageError("query", f"the API answered {exchange.status} {exchange.reason}", auth_failure=True,
                             results=[result])
        return [result]

    def export(self, creds: Credentials, statement: str, *, write: RowWriter, max_rows: int, timeout_s: int,
               cancel: CancelToken, connect_timeout: int = 5, read_only: bool = False) -> Exported:
        """The response's table as it is: a GET sent again, its body already bounded by
        ``CREDTOOL_REST_MAX_RESPONSE_BYTES``, its rows masked as the page shows them."""
        try:
            method = parse(statement).method
        except ValueError as exc:
            raise StageError("query", str(exc)) from None
        if method != "GET":
            raise StageError("query", f"only a GET request can be exported (this is {method}), since exporting "
                                      "sends it again")
        [result] = self.run_query(creds, statement, max_rows=max_rows, timeout_s=timeout_s, cancel=cancel,
                                  connect_timeout=connect_timeout, read_only=read_only)
        status = (result.response or {}).get("status", 0)
        if status >= 400:
            raise StageError("query", f"the API answered {result.status}")
        if not result.columns:
            raise StageError("query", "the response holds no table to export (a JSON array of objects)")
        write(result.columns, [])
        for start in range(0, len(result.rows), 2000):
            write(result.columns, result.rows[start:start + 2000])
        return Exported(result.columns, result.row_count, result.truncated)

    def _exchange(self, creds: Credentials, request: HttpRequest, *, timeout_s: int, connect_timeout: int,
                  cancel: CancelToken) -> _Exchange:
        values = creds.values
        errors = self.validate(values)
        if errors:
            raise StageError("connection", "; ".join(errors.values()))
        try:
            url = _join(str(values["base_url"]), request.path)
        except ValueError as exc:
            raise StageError("query", str(exc)) from None
        auth_headers = _auth_headers(values)
        extra = _extra_headers(str(values.get("headers") or ""))
        body = request.body.encode() if request.body.strip() else None
        verify = values.get("verify_tls") not in (False, "false", "False", "0", "off", "")
        client = _clients.get(f"{creds.fingerprint}:{verify}", verify)
        exchange = _Exchange(request.method, url)
        deadline = deadlines.schedule(timeout_s, exchange.abort)
        cancel.on_cancel(exchange.abort)
        try:
            with deadline:
                exchange.send(client, auth_headers, extra, body, timeout_s=timeout_s, connect_timeout=connect_timeout)
        except _Aborted:
            if cancel.cancelled:
                raise QueryCancelled() from None
            raise StageError("query", f"the request ran longer than its timeout ({timeout_s} s) and was stopped") \
                from None
        finally:
            cancel.on_cancel(None)
        return exchange


def encoded(bound: BoundRequest) -> str:
    """The request's text with each bound value encoded for where it stands (see the module's doc)."""
    place = _Place()
    out: list[str] = []
    for i, piece in enumerate(bound.pieces):
        if i:
            source = bound.sources[i - 1] if i - 1 < len(bound.sources) else f"binding {i}"
            out.append(place.encode(bound.values[i - 1], source))
        for c in piece:
            place.read(c)
        out.append(piece)
    return "".join(out)


class _Place:
    """Where the text read so far ends: in the method, the path, the query string or the body
    (and there, whether inside a JSON string)."""

    def __init__(self) -> None:
        self.where, self.method_seen, self.newline = "method", False, False
        self.in_string = self.escaped = False

    def read(self, c: str) -> None:
        if self.where == "body":
            if self.escaped:
                self.escaped = False
            elif c == "\\" and self.in_string:
                self.escaped = True
            elif c == '"':
                self.in_string = not self.in_string
            return
        if c == "\n" and self.newline:
            self.where = "body"
            return
        self.newline = c == "\n"
        if self.where == "method":
            if c not in " \t\r\n":
                self.method_seen = True
            elif self.method_seen:
                self.where = "path"
        elif self.where == "path" and c == "?":
            self.where = "query"

    def encode(self, value: Any, source: str) -> str:
        if self.where == "method":
            raise ValueError(f"{source}: the method cannot be a binding")
        if self.where != "body":
            return quote(_text(value), safe="")
        if self.in_string:  # inside "…": the value's text, escaped as a JSON string's content
            return json.dumps(_text(value), ensure_ascii=False)[1:-1]
        return json.dumps(value, ensure_ascii=False)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


class _Aborted(Exception):
    pass


class _Exchange:
    """One request, its redirects, and the response read up to the cap."""

    def __init__(self, method: str, url: str) -> None:
        self.method, self.url, self.final_url = method, url, url
        self.status, self.reason = 0, ""
        self.headers: list[tuple[str, str]] = []
        self.body = b""
        self.cut = False
        self.elapsed_ms = 0.0
        self.sent_headers: dict[str, str] = {}
        self.secret_header_names: set[str] = set()
        self._response: httpx.Response | None = None
        self._aborted = False

    def abort(self) -> None:
        self._aborted = True
        response = self._response
        if response is not None:
            try:
                response.close()
            except Exception:  # closing from another thread may race the reader: it stops either way
                pass

    def send(self, client: httpx.Client, auth_headers: dict[str, str], extra: dict[str, str], body: bytes | None, *,
             timeout_s: int, connect_timeout: int) -> None:
        method, url = self.method, self.url
        origin = _origin(url)
        headers = {**extra, **auth_headers}
        self.secret_header_names = {name.lower() for name in auth_headers}
        if body is not None:
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        for hop in range(MAX_REDIRECTS + 1):
            target = urlsplit(url)
            port = target.port or (443 if target.scheme == "https" else 80)
            address = destinations.check(target.hostname or "", port)
            pinned = urlunsplit((target.scheme, _netloc(address, target.port), target.path or "/", target.query, ""))
            self.sent_headers = {"Host": target.netloc, **headers}
            request = client.build_request(
                method, pinned, headers=self.sent_headers, content=body,
                timeout=httpx.Timeout(timeout_s, connect=connect_timeout),
                extensions={"sni_hostname": target.hostname} if target.scheme == "https" else {})
            if self._aborted:
                raise _Aborted()
            try:
                response = client.send(request, stream=True)
            except httpx.TimeoutException:
                raise StageError("connection" if hop == 0 else "query",
                                 f"{target.hostname} did not answer within {timeout_s} s") from None
            except httpx.HTTPError as exc:
                if self._aborted:
                    raise _Aborted() from None
                raise StageError("connection", f"could not reach {target.hostname}:{port}: {_reason(exc)}") from None
            self._response = response
            location = response.headers.get("location")
            if response.status_code in REDIRECTS and location:
                response.close()
                if hop == MAX_REDIRECTS:
                    raise StageError("query", f"more than {MAX_REDIRECTS} redirects, the last to {location}")
                url = urljoin(url, location)
                if urlsplit(url).scheme not in ("http", "https"):
                    raise StageError("query", f"a redirect to {url!r}, which is not HTTP")
                if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                    method, body = "GET", None
                    headers.pop("Content-Type", None)
                if _origin(url) != origin:  # the credentials stay with the origin they were given for
                    headers = {k: v for k, v in headers.items() if k.lower() not in self.secret_header_names}
                continue
            self.final_url = url
            self.status, self.reason = response.status_code, response.reason_phrase
            self.headers = list(response.headers.multi_items())
            self._read(response)
            self.elapsed_ms = (time.perf_counter() - started) * 1000
            return

    def _read(self, response: httpx.Response) -> None:
        cap = max_response_bytes()
        chunks, size = [], 0
        try:
            for chunk in response.iter_bytes():
                room = cap - size
                chunks.append(chunk[:room])
                size += len(chunk[:room])
                if len(chunk) > room:
                    self.cut = True
                    break
        except (httpx.HTTPError, RuntimeError, OSError) as exc:
            if self._aborted:
                raise _Aborted() from None
            raise StageError("query", f"the response broke off: {_reason(exc)}") from None
        finally:
            response.close()
        if self._aborted:
            raise _Aborted()
        self.body = b"".join(chunks)

    def result(self, max_rows: int, kind: Kind, creds: Credentials) -> StatementResult:
        text = self.body.decode(_charset(self.headers), errors="replace")
        document, is_json = None, False
        if text.strip() and not self.cut:
            try:
                document, is_json = json.loads(text), True
            except ValueError:
                pass
        shown = json.dumps(document, indent=2, ensure_ascii=False) if is_json else text
        columns, rows, truncated = _table(document, max_rows, kind) if is_json else ([], [], False)
        hidden = creds.hidden
        response = {
            "status": self.status, "reason": self.reason, "elapsed_ms": round(self.elapsed_ms, 1),
            "headers": [[name, value] for name, value in self.headers], "size": len(self.body),
            "body": shown[:SHOWN_BODY_CHARS], "body_truncated": self.cut or len(shown) > SHOWN_BODY_CHARS,
            "json": is_json,
            "request": {"method": self.method, "url": self.url,
                        "headers": [[name, MASK if name.lower() in self.secret_header_names or is_secret_key(name)
                                     else value] for name, value in self.sent_headers.items()]},
        }
        # The API may echo what it was sent: what the credentials hold is masked wherever it shows.
        response = mask_secrets(response, hidden)
        response["headers"] = [[name, MASK if is_secret_key(name) else value] for name, value in response["headers"]]
        rows = mask_secrets(rows, hidden)
        return StatementResult(f"{self.method} {mask_text(self.url, hidden)}", columns=columns, rows=rows,
                               row_count=len(rows), truncated=truncated, status=f"{self.status} {self.reason}",
                               response=response)


def _table(document: Any, max_rows: int, kind: Kind) -> tuple[list[str], list[list[Any]], bool]:
    """A JSON array of objects (or an object holding exactly one) as columns and rows."""
    records = document
    if isinstance(document, dict):
        lists = [value for value in document.values() if _is_records(value)]
        records = lists[0] if len(lists) == 1 else None
    if not _is_records(records):
        return [], [], False
    columns: list[str] = []
    for record in records:
        for key in record:
            if key not in columns:
                columns.append(key)
    rows = [[_cell(record.get(column), kind) for column in columns] for record in records[:max_rows]]
    return columns, rows, len(records) > max_rows


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def _cell(value: Any, kind: Kind) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return kind.cell(value)


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of an http(s) URL; ValueError with a sentence otherwise."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("Enter an http:// or https:// URL with a host, e.g. https://api.example.com/v1.")
    if parts.username or parts.password:
        raise ValueError("Put credentials in the Authentication fields, not in the URL.")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("The URL's port is not a number between 1 and 65535.") from None
    default = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{parts.hostname.lower()}" + (f":{port}" if port and port != default else "")


def _join(base: str, path: str) -> str:
    """``path`` (and its query string) after the base URL's own path; never another host."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//", path.strip()):
        raise ValueError("The path is joined to the base URL: write /users, not a whole URL.")
    base_parts = urlsplit(base.strip())
    path_part, _, query = path.strip().partition("?")
    joined = base_parts.path.rstrip("/") + ("/" + path_part.lstrip("/") if path_part else "")
    query = "&".join(q for q in (base_parts.query, query) if q)
    return urlunsplit((base_parts.scheme, base_parts.netloc, joined or "/", query, ""))


def _netloc(address: str, port: int | None) -> str:
    host = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    return f"{host}:{port}" if port else host


def _auth_headers(values: dict[str, Any]) -> dict[str, str]:
    auth = str(values.get("auth") or "none")
    if auth == "bearer":
        return {"Authorization": f"Bearer {values.get('bearer_token') or ''}"}
    if auth == "basic":
        pair = f"{values.get('username') or ''}:{values.get('password') or ''}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    if auth == "api_key":
        return {str(values.get("header_name") or "X-API-Key"): str(values.get("api_key") or "")}
    return {}


def _extra_headers(text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not _HEADER_NAME.match(name.strip()):
            raise ValueError(f"Line {number} is not a header: write “Name: value”.")
        if any(c in value for c in "\r\n"):
            raise ValueError(f"Line {number}: a header's value is one line.")
        headers[name.strip()] = value.strip()
    return headers


def _charset(headers: list[tuple[str, str]]) -> str:
    for name, value in headers:
        if name.lower() == "content-type":
            match = re.search(r"charset=([\w-]+)", value, re.IGNORECASE)
            if match:
                return match.group(1)
    return "utf-8"


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.split("] ", 1)[-1] if text.startswith("[") else text
