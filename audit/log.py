"""Recording audit events: one function, called from views and signals."""
from __future__ import annotations

from typing import Any

from django.db import models
from django.http import HttpRequest

from .models import AuditEvent


def client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    # Behind a proxy, Django's REMOTE_ADDR is the proxy; operators who trust
    # their proxy can map X-Forwarded-For to REMOTE_ADDR there.
    return request.META.get("REMOTE_ADDR") or None


def record_event(request: HttpRequest | None, action: str, obj: models.Model | None = None, *,
           actor: Any = None, **detail: Any) -> AuditEvent:
    user = actor if actor is not None else getattr(request, "user", None)
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    return AuditEvent.objects.create(
        actor=user if authenticated else None,
        actor_name=(user.get_username() if authenticated else detail.pop("username", "")) or "",
        action=action,
        object_type=obj._meta.model_name if obj is not None else "",
        object_id=str(obj.pk) if obj is not None and obj.pk is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        detail=detail,
        ip=client_ip(request),
    )
