"""An HTTP request as the "http" editor writes it and a run records it: ``METHOD path``, a blank
line, then the body. One text, so a run's record, its page and Recent runs read like a request."""
from __future__ import annotations

from dataclasses import dataclass

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
READ_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    body: str = ""

    def text(self) -> str:
        return f"{self.method} {self.path}" + (f"\n\n{self.body}" if self.body.strip() else "")


def parse(text: str) -> HttpRequest:
    """The request in ``text``; ValueError with a sentence when it is not one."""
    head, _, body = text.partition("\n\n")
    method, _, path = head.strip().partition(" ")
    method = method.upper()
    if method not in METHODS + READ_METHODS:
        raise ValueError(f"{method or 'an empty method'!r} is not an HTTP method ({', '.join(METHODS)})")
    return HttpRequest(method, path.strip(), body)
