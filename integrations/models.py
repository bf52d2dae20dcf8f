from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse

from credtool import crypto
from runs.models import BackgroundRun

from . import kinds


class Integration(models.Model):
    """A connection to a database. Non-secret settings are JSON; secrets are one encrypted blob."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=40)
    config = models.JSONField(default=dict, blank=True)
    secrets_encrypted = models.TextField(blank=True, default="")
    statement_timeout_s = models.PositiveIntegerField(
        "Statement timeout (seconds)", default=30,
        validators=[MinValueValidator(1), MaxValueValidator(3600)],
    )
    # Fetched credentials: the fields hold {{workflow.response...}} bindings that a
    # worker renders from the workflow's response before connecting.
    fetch_credentials = models.BooleanField("Fetch credentials dynamically", default=False)
    credentials_workflow = models.ForeignKey(
        "workflows.Workflow", verbose_name="Workflow", null=True, blank=True, on_delete=models.PROTECT,
        related_name="integrations",
    )
    credentials_cache_s = models.PositiveIntegerField(
        "Cache credentials for (seconds)", default=300, validators=[MaxValueValidator(86400)],
    )
    # Runners see and query only the integrations shared with them.
    shared_with = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="shared_integrations")
    read_only = models.BooleanField(
        "Read-only", default=False, help_text="Queries run in a read-only session and transaction: no writes, no DDL.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Bumped on every save: workers compare it to drop cached credentials and pools.
    revision = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["name"]
        permissions = [("run_query", "Can run queries")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("integrations:detail", args=[self.pk])

    @property
    def kind_impl(self) -> kinds.Kind:
        return kinds.get(self.kind)

    @property
    def kind_label(self) -> str:
        try:
            return self.kind_impl.label
        except kinds.NotRegistered:
            return self.kind

    def secrets(self) -> dict[str, Any]:
        return crypto.decrypt_json(self.secrets_encrypted)

    def set_secrets(self, values: dict[str, Any]) -> None:
        self.secrets_encrypted = crypto.encrypt_json(values) if values else ""

    def has_secret(self, name: str) -> bool:
        return bool(self.secrets().get(name))

    def summary(self) -> str:
        """A one-line description for lists, as the kind writes it (e.g. ``app_user@db.internal:5432/app``)."""
        try:
            return self.kind_impl.summary(self.config)
        except kinds.NotRegistered:
            return ""




class QueryRun(BackgroundRun):
    """One query a user ran: the record, and the (capped) result of each of its statements."""

    task_name = "integrations.run_query"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="runs")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    sql = models.TextField()
    duration_ms = models.FloatField(null=True, blank=True)
    # One entry per statement, in order: {"statement", "columns", "rows", "row_count",
    # "truncated", "status"}; rows hold cells as the kind converted them (see kinds/cells.py).
    results = models.JSONField(default=list, blank=True)
    # Rows of all results together (as far as they were read), and the last statement's status.
    row_count = models.IntegerField(null=True, blank=True)
    status_message = models.CharField(max_length=200, blank=True, default="")
    error_stage = models.CharField(max_length=20, blank=True, default="")
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["integration", "-created_at"]), models.Index(fields=["status", "lease_until"]),
                   models.Index(fields=["status", "sent_at"])]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.integration_id}"

    @classmethod
    def error_fields(cls, message: str) -> dict[str, Any]:
        return {"error_stage": "", "error": message}

    @property
    def error_text(self) -> str:
        return f"{self.error_stage.capitalize()} failed: {self.error}" if self.error_stage else self.error

    @property
    def truncated(self) -> bool:
        return any(result.get("truncated") for result in self.results)


class ConnectionCheck(BackgroundRun):
    """A "Test connection" of form values not yet saved, run by a worker.

    The worker is the only process that talks to users' databases, so the form's
    values wait here (secrets encrypted) for it, and the row is emptied once done.
    """

    task_name = "integrations.check_connection"

    kind = models.CharField(max_length=40)
    integration = models.ForeignKey(Integration, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    config = models.JSONField(default=dict, blank=True)
    secrets_encrypted = models.TextField(blank=True, default="")
    # With fetched credentials, the worker runs this workflow and renders the bindings in config.
    credentials_workflow = models.ForeignKey(
        "workflows.Workflow", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    message = models.TextField(blank=True, default="")

    @classmethod
    def error_fields(cls, message: str) -> dict[str, Any]:
        return {"message": message, "secrets_encrypted": ""}
