"""API tokens: made, shown once, stored as a hash, resolved from ``Authorization: Bearer``, revoked.

A token is ``ct_`` and 43 URL-safe characters (256 random bits). The database
keeps its first 11 characters (to show and to find it) and its sha256; the
secret itself exists only in the page that shows it once and with its holder.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from django.utils import timezone

from .errors import ApiError
from .models import ApiToken

PREFIX = "ct_"
SHOWN_CHARS = len(PREFIX) + 8
BEARER = "bearer "
_SHAPE = re.compile(re.escape(PREFIX) + r"[A-Za-z0-9_-]{20,100}")


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    secret: str  # to show once; never stored

    def __repr__(self) -> str:  # never print the secret
        return f"NewToken({self.token!r})"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(user: AbstractBaseUser, name: str) -> NewToken:
    secret = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=secret[:SHOWN_CHARS], token_hash=digest(secret))
    return NewToken(token, secret)


def revoke(token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db()


def authenticate(request: HttpRequest) -> ApiToken:
    """The active token in ``Authorization: Bearer <token>``, its use recorded; else a 401.

    Only the header counts: a session cookie is ignored, so a page in another
    site cannot make a logged-in browser call the API (which has no CSRF check)."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header[: len(BEARER)].lower() == BEARER:
        raise ApiError(401, _missing_token_message(request), headers={"WWW-Authenticate": 'Bearer realm="credtool"'})
    secret = header[len(BEARER):].strip()
    token = _matching(secret)
    if token is None:
        raise ApiError(401, "The API token is not valid (mistyped, revoked, or its user is inactive).",
                       headers={"WWW-Authenticate": 'Bearer realm="credtool", error="invalid_token"'})
    now = timezone.now()
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    token.last_used_at = now
    return token


def _matching(secret: str) -> ApiToken | None:
    if not _SHAPE.fullmatch(secret):  # nothing else is worth a query (nor can be, if it holds a NUL)
        return None
    wanted = digest(secret)
    candidates = (ApiToken.objects.select_related("user")
                  .filter(prefix=secret[:SHOWN_CHARS], revoked_at__isnull=True, user__is_active=True))
    for token in candidates:
        # Found by its prefix, accepted by the hash of all of it; compare_digest takes the same
        # time wherever the hashes differ.
        if hmac.compare_digest(token.token_hash, wanted):
            return token
    return None


def _missing_token_message(request: HttpRequest) -> str:
    if request.COOKIES:
        return ("Session cookies are not accepted on /api/: send an API token as "
                "'Authorization: Bearer <token>' (create one on your API tokens page).")
    return "Send an API token as 'Authorization: Bearer <token>' (create one on your API tokens page)."
