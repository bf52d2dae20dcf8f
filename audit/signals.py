from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from .log import record_event


@receiver(user_logged_in)
def logged_in(sender, request, user, **kwargs) -> None:
    record_event(request, "login", actor=user)


@receiver(user_logged_out)
def logged_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        record_event(request, "logout", actor=user)


@receiver(user_login_failed)
def login_failed(sender, credentials, request=None, **kwargs) -> None:
    # The attempted username is kept; the password Django already hid from us.
    record_event(request, "login_failed", username=str(credentials.get("username", ""))[:150])
