"""An export: a query result's whole statement run again by a worker into a file (CSV or JSON)."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from integrations.models import QueryRun
from runs.models import BackgroundRun, RunStatus


class ExportFormat(models.TextChoices):
    CSV = "csv", "CSV"
    JSON = "json", "JSON"


class ExportRun(BackgroundRun):
    """A background run like a query (``runs.lifecycle``): the row is its state, its file is
    kept a day (``expires_at``), then deleted by ``exports.files.purge``."""

    task_name = "exports.run_export"

    query_run = models.ForeignKey(QueryRun, on_delete=models.CASCADE, related_name="exports")
    # Which result of the run (1-based, in statement order): its statement alone is run again.
    statement_number = models.PositiveIntegerField(default=1)
    format = models.CharField(max_length=8, choices=ExportFormat.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # CREDTOOL_EXPORT_MAX_ROWS when it was asked for: the worker reads it here, not from its own settings.
    max_rows = models.PositiveIntegerField()
    # Progress while running (updated about twice a second), the total once done.
    rows_written = models.PositiveIntegerField(default=0)
    truncated = models.BooleanField(default=False)
    # Under VAR_DIR/exports; "" before the worker starts and once the file is deleted.
    file_path = models.CharField(max_length=500, blank=True, default="")
    size_bytes = models.BigIntegerField(null=True, blank=True)
    expires_at = models.DateTimeField()
    duration_ms = models.FloatField(null=True, blank=True)
    error_stage = models.CharField(max_length=20, blank=True, default="")
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "lease_until"]), models.Index(fields=["status", "sent_at"]),
                   models.Index(fields=["expires_at"])]

    def __str__(self) -> str:
        return f"export {self.pk} of run {self.query_run_id}"

    @classmethod
    def error_fields(cls, message: str) -> dict[str, Any]:
        return {"error_stage": "", "error": message}

    @property
    def expired(self) -> bool:
        return self.status == RunStatus.SUCCEEDED and (not self.file_path or self.expires_at <= timezone.now())

    @property
    def rows_text(self) -> str:
        return f"{self.rows_written:,} row{'s' if self.rows_written != 1 else ''}"
