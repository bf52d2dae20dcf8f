"""Profiles: the environments (Production, Staging, ...) that one integration is configured for."""
from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models

KEY_PATTERN = r"^[a-z][a-z0-9_]{0,29}$"
# CREDTOOL_PROFILE_<KEY>_ENV_<NAME> must name one profile: a key "a_env" would make
# CREDTOOL_PROFILE_A_ENV_ENV_X read as profile "a" too.
NO_ENV_PART = r"^(?!.*_env(_|$))"


class ProfileQuerySet(models.QuerySet["Profile"]):
    def default(self) -> "Profile | None":
        """Production, else the oldest profile: what a query runs under when nobody chose."""
        return self.filter(key="production").first() or self.order_by("pk").first()


class Profile(models.Model):
    """An environment. Its ``key`` is immutable: steps read it as ``profile``, workers are
    started with it (``CREDTOOL_WORKER_PROFILES``) and it names per-profile Env variables."""

    key = models.CharField(
        "Key", max_length=30, unique=True,
        validators=[RegexValidator(KEY_PATTERN, "Use lower-case letters, digits and _; start with a letter."),
                    RegexValidator(NO_ENV_PART, "A key cannot contain “_env”: it would make per-profile Env "
                                                "variable names ambiguous.")],
        help_text="Lower-case letters, digits and _, e.g. qa. Steps read it as profile; it cannot change later.",
    )
    name = models.CharField("Name", max_length=60, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProfileQuerySet.as_manager()

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.name
