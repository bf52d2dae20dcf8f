from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.utils import timezone

from audit.log import client_ip
from audit.models import AuditEvent

# Failed logins allowed per account, and per address, within the window.
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_IP = 20
WINDOW = timedelta(minutes=15)


class LoginForm(AuthenticationForm):
    """Django's login form, with labels as written and a limit on failed attempts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, label_suffix="", **kwargs)

    def clean(self) -> dict[str, Any]:
        # Counted under the name Django logs in with (NFKC-normalised, as the username
        # field cleans it): "ｒｕｎｎｅｒ２" is runner2's account, so it shares runner2's failures.
        username = login_name(self.cleaned_data.get("username") or self.data.get("username") or "")
        since = timezone.now() - WINDOW
        failures = AuditEvent.objects.filter(action="login_failed", at__gte=since)
        ip = client_ip(self.request)
        if (failures.filter(actor_name=username).count() >= MAX_FAILURES_PER_USER
                or (ip and failures.filter(ip=ip).count() >= MAX_FAILURES_PER_IP)):
            # Checked before the password: a locked-out guess costs nothing and reveals nothing.
            raise forms.ValidationError(
                "Too many failed logins. Wait 15 minutes and try again.", code="rate_limited")
        return super().clean()


def login_name(typed: str) -> str:
    """The account a typed username logs in to, as failures are recorded under it.

    The default user model compares usernames exactly, after NFKC normalisation;
    a model that compares them case-insensitively would fold case here too.
    """
    return get_user_model().normalize_username(str(typed)).strip()
