from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A user's key to the HTTP API. It acts as its user (their role and what is shared with them);
    only a hash of the secret is stored, so a lost token is revoked and replaced, never recovered."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField("Token name", max_length=100)
    # The secret's first characters ("ct_" and 8 more): shown to recognise it, and used to find it.
    prefix = models.CharField(max_length=16, db_index=True)
    # sha256 of the whole secret, hex: the secret has 256 random bits, so no slow hash is needed.
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
