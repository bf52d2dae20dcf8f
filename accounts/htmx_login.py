"""An htmx request from a user whose session expired goes to the login page, and back afterwards.

Without this, such a request never reaches the login redirect: a POST meets the CSRF
check first (403), and a GET follows the redirect and swaps the login page into the
part of the page that asked. htmx does not swap a 4xx at all, so the user saw only a
toast "The server answered 403". ``HX-Redirect`` makes htmx load the login page as
a whole page, with ``next=`` the page the user was on (htmx's ``HX-Current-URL``),
not the partial's URL, which is no page to come back to.
"""
from __future__ import annotations

from typing import Any, Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django.utils.http import url_has_allowed_host_and_scheme


class HtmxLoginRedirectMiddleware:
    """Before CSRF's check (so: before ``CsrfViewMiddleware`` in ``MIDDLEWARE``), answer an anonymous
    htmx request for a view that needs a login with 200 and ``HX-Redirect`` to the login page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any,
                     view_kwargs: Any) -> HttpResponse | None:
        if request.headers.get("HX-Request") != "true" or request.user.is_authenticated:
            return None
        if not getattr(view_func, "login_required", True):  # @login_not_required: the login page, the API
            return None
        login = redirect_to_login(_page_url(request), resolve_url(settings.LOGIN_URL))
        response = HttpResponse(status=200)
        response["HX-Redirect"] = login["Location"]
        return response


def _page_url(request: HttpRequest) -> str:
    """The path of the page the user was on, from htmx's ``HX-Current-URL``; the request's own path if
    that header is missing or names another site."""
    current = request.headers.get("HX-Current-URL", "")
    if current and url_has_allowed_host_and_scheme(current, allowed_hosts={request.get_host()},
                                                   require_https=request.is_secure()):
        parts = urlsplit(current)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return request.get_full_path() if request.method == "GET" else "/"
