"""What every view under /api/ shares: methods, token authentication, and JSON errors only.

Whatever goes wrong, a caller gets ``{"error": ...}`` with a fitting status, never
Django's HTML pages: a 404 (unknown name, run not visible), a 405, a 400 for a
body that is not JSON, a 413 for one that is too large, and a JSON 500 (logged)
for a bug of ours.
"""
from __future__ import annotations

import logging
from functools import wraps
from typing import Any, Callable

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from . import tokens
from .errors import ApiError

log = logging.getLogger(__name__)


def endpoint(*methods: str, authenticated: bool = True) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """An API view answering ``methods``. With ``authenticated`` the view is called as
    ``view(request, token, **kwargs)``, and ``request.user`` is the token's user.

    No CSRF check: a token request carries no cookie-borne credentials (``tokens.authenticate``
    never reads the session), so a page in another site has nothing to ride on."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_not_required  # the token, not the login page, decides
        @csrf_exempt
        @wraps(view)
        def answer(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                if request.method not in methods:
                    raise ApiError(405, f"{request.method} is not allowed here; use {', '.join(methods)}.",
                                   headers={"Allow": ", ".join(methods)})
                if authenticated:
                    token = tokens.authenticate(request)
                    request.user = token.user  # the audit log names them
                    return view(request, token, *args, **kwargs)
                return view(request, *args, **kwargs)
            except ApiError as exc:
                return exc.response()
            except (Http404, ObjectDoesNotExist):
                return JsonResponse({"error": "Not found."}, status=404)
            except PermissionDenied as exc:
                return JsonResponse({"error": str(exc) or "Not allowed."}, status=403)
            except RequestDataTooBig:
                return JsonResponse({"error": "The request body is too large."}, status=413)
            except Exception:
                log.exception("API %s %s failed", request.method, request.path)
                return JsonResponse({"error": "Internal error; see the server's log."}, status=500)

        return answer

    return decorate
