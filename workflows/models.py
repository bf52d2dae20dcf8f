from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.urls import reverse

from runs.models import BackgroundRun, RunStatus

from .parameters import parse_values

# Workflow and step names are referenced from code (`first.output`) and from
# bindings (`{{getSecrets.response.host}}`), so they must be identifiers.
identifier = RegexValidator(
    r"^[A-Za-z_][A-Za-z0-9_]*\Z",
    "Use letters, digits and underscores, not starting with a digit (it is used in code and bindings).",
)
RESERVED_STEP_NAMES = frozenset({"Env", "params", "profile", "print", "json", "True", "False", "None"})


class Workflow(models.Model):
    name = models.CharField(max_length=64, unique=True, validators=[identifier])
    description = models.CharField(max_length=300, blank=True, default="")
    # [{"name": "region", "default": "us-east-1"}, ...]: readable as params.<name>
    parameters = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Bumped on every save: cached credentials fetched with an older revision are dropped.
    revision = models.PositiveIntegerField(default=1)
    # A cron expression ("*/15 * * * *") in settings.TIME_ZONE; blank: not scheduled.
    # Kept as this workflow's django-celery-beat PeriodicTask by workflows.schedules.
    schedule = models.CharField("Schedule", max_length=100, blank=True, default="")
    # None (its profile was deleted): the default profile, as for any run with no profile.
    schedule_profile = models.ForeignKey("profiles.Profile", verbose_name="Schedule profile", null=True, blank=True,
                                         on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["name"]
        permissions = [("run_workflow", "Can run workflows")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("workflows:detail", args=[self.pk])

    def default_params(self) -> dict[str, Any]:
        """The parameters' values when none is typed: a JSON default is parsed, like a typed value."""
        return parse_values(self, {})


class StepType(models.TextChoices):
    PYTHON = "python", "Python"
    INTEGRATION = "integration", "Integration"


class Step(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField()
    name = models.CharField("Step name", max_length=64, validators=[identifier])
    step_type = models.CharField("Step type", max_length=20, choices=StepType.choices, default=StepType.PYTHON)
    # An Integration step's integration: one in use by a step is not deleted (PROTECT says which).
    # A string reference: the integrations app builds on this one, never the other way round.
    integration = models.ForeignKey("integrations.Integration", verbose_name="Integration", null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="workflow_steps")
    # A Python step's code, or an Integration step's request as its console writes it (the SQL,
    # or "METHOD path", a blank line and the body), {{bindings}} and all.
    code = models.TextField("Code")
    timeout_s = models.PositiveIntegerField(
        "Timeout (seconds)", default=30, validators=[MinValueValidator(1), MaxValueValidator(600)]
    )

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "name"], name="unique_step_name_per_workflow"),
        ]

    def __str__(self) -> str:
        return f"{self.workflow.name}.{self.name}"

    @property
    def is_integration(self) -> bool:
        return self.step_type == StepType.INTEGRATION


class WorkflowRun(BackgroundRun):
    """A run of a workflow. Everything stored here is masked: no secret value is ever saved."""

    task_name = "workflows.run_workflow"

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="runs")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # Why it ran: "manual", "api", "schedule" (the workflow's Schedule), "preview" (from an
    # integration form), "credentials" (before a query) or "test-connection".
    trigger = models.CharField(max_length=20, default="manual")
    params = models.JSONField(default=dict, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    error_step = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["workflow", "-created_at"]), models.Index(fields=["status", "lease_until"]),
                   models.Index(fields=["status", "sent_at"])]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.workflow_id}"


class StepRun(models.Model):
    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="step_runs")
    position = models.PositiveIntegerField()
    step_name = models.CharField(max_length=64)
    status = models.CharField(max_length=20, choices=RunStatus.choices)
    duration_ms = models.FloatField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    stdout = models.TextField(blank=True, default="")
    stderr = models.TextField(blank=True, default="")
    error_type = models.CharField(max_length=200, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    error_line = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["position"]
