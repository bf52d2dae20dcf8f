"""A small JSON API for tests, the benchmark and the demo, on 127.0.0.1 and a free port.

It asks for a credential (a bearer token by default; Basic or an API key header
on request), which ``rotate`` changes, and records what it was sent. Paths:

- ``/`` and ``/orders``: JSON (an array of order objects); ``/orders/wrapped``: the
  same inside ``{"data": [...], "count": n}``; ``/text``: plain text;
- ``/echo``: what the request carried (method, path and query string as sent, headers, JSON body);
- ``/big?mb=N``: N MB of text; ``/slow?s=N``: answers after N seconds;
- ``/redirect?to=URL``: a 302 to URL, without asking for the credential;
- ``/set-cookie`` and ``/cookies``: sets a cookie, and shows the Cookie header it got.
"""
from __future__ import annotations

import base64
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ORDERS = [
    {"id": 1, "item": "apple", "qty": 3, "price": 1.5, "tags": ["fruit"], "shipped": True},
    {"id": 2, "item": "pear", "qty": 5, "price": 0.75, "tags": [], "shipped": False},
    {"id": 3, "item": "plum", "qty": 8, "price": 2.1, "tags": ["fruit", "stone"], "shipped": None},
]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class LocalApi:
    auth: str = "bearer"  # bearer, basic, api_key or none
    secret: str = "token-1"  # the token, "user:password", or the API key
    header_name: str = "X-API-Key"
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._server.serve_forever, name="local-api", daemon=True).start()

    def rotate(self, secret: str) -> None:
        self.secret = secret

    def authorized(self, headers) -> bool:
        if self.auth == "none":
            return True
        if self.auth == "bearer":
            return headers.get("Authorization") == f"Bearer {self.secret}"
        if self.auth == "basic":
            return headers.get("Authorization") == "Basic " + base64.b64encode(self.secret.encode()).decode()
        return headers.get(self.header_name) == self.secret

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:  # a client that hung up early (a cut body)
        pass


def _handler(api: LocalApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out as two writes: without this, Nagle and the client's
            # delayed ACK add 40 ms to every answer.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes, content_type: str = "application/json",
                  extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, value: object, extra: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(value).encode(), extra=extra)

        def _handle(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            api.seen.append(Seen(self.command, self.path, dict(self.headers.items())))
            if url.path == "/redirect":
                self._send(302, b"", extra={"Location": query.get("to", ["/"])[0]})
                return
            if not api.authorized(self.headers):
                self._json(401, {"error": "unauthorized"}, {"WWW-Authenticate": "Bearer"})
                return
            if url.path in ("/", "/orders"):
                self._json(200, ORDERS)
            elif url.path == "/orders/wrapped":
                self._json(200, {"data": ORDERS, "count": len(ORDERS)})
            elif url.path == "/text":
                self._send(200, b"plain <b>text</b>\n", "text/plain; charset=utf-8")
            elif url.path == "/echo":
                body = json.loads(raw) if raw else None
                self._json(200, {"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                                 "body": body})
            elif url.path == "/big":
                self._send(200, b"x" * int(float(query.get("mb", ["1"])[0]) * 1024 * 1024), "text/plain")
            elif url.path == "/slow":
                time.sleep(float(query.get("s", ["5"])[0]))
                self._json(200, {"slept": True})
            elif url.path == "/set-cookie":
                self._json(200, {"set": True}, {"Set-Cookie": "session=sess-abc123; Path=/"})
            elif url.path == "/cookies":
                self._json(200, {"cookie": self.headers.get("Cookie")})
            else:
                self._json(404, {"error": "not found", "path": url.path})

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    return Handler
