from __future__ import annotations

import json

from typing import Any, Iterable

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import connection, models
from django.urls import reverse
from django.utils.functional import cached_property

from credtool import crypto, rows
from profiles.models import Profile
from runs.models import BackgroundRun

from . import kinds


class IntegrationQuerySet(models.QuerySet["Integration"]):
    def create_with_default(self, *, config: dict[str, Any], secrets: dict[str, Any] | None = None,
                            fetch_credentials: bool = False, credentials_workflow: Any = None,
                            credentials_cache_s: int = 300, **fields: Any) -> "Integration":
        """An integration and its Default configuration, in one go (demo, bench and tests)."""
        integration = self.create(**fields)
        default = Configuration(integration=integration, is_default=True, config=config,
                                fetch_credentials=fetch_credentials, credentials_workflow=credentials_workflow,
                                credentials_cache_s=credentials_cache_s)
        default.set_secrets(secrets or {})
        default.save()
        return integration


class Integration(models.Model):
    """A database or API, as users see it: a name, a kind, a policy (read-only, timeout) and who may use it.

    Where it connects and with which credentials is its ``Configuration``: the
    Default one for every profile, or a profile's own (Staging's database, say).
    """

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=40)
    statement_timeout_s = models.PositiveIntegerField(
        "Statement timeout (seconds)", default=30,
        validators=[MinValueValidator(1), MaxValueValidator(3600)],
    )
    read_only = models.BooleanField(
        "Read-only", default=False, help_text="Queries run in a read-only session and transaction: no writes, no DDL.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = IntegrationQuerySet.as_manager()

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

    @cached_property
    def default_configuration(self) -> "Configuration":
        prefetched = getattr(self, "_prefetched_objects_cache", {}).get("configurations")
        if prefetched is not None:  # lists prefetch them: no query per row
            return next(each for each in prefetched if each.is_default)
        return self.configurations.get(is_default=True)

    def configuration_for(self, profile: Profile | None) -> "Configuration":
        """The profile's own configuration, else the Default one. On every Run's path: its id by one
        plain statement (the ORM's OR across the many-to-many cost ~0.4 ms of CPU to build), then
        the row (credtool.rows)."""
        if profile is None:
            return self.default_configuration
        qn = connection.ops.quote_name
        links, configurations = ConfigurationProfile._meta.db_table, Configuration._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT COALESCE((SELECT {qn('configuration_id')} FROM {qn(links)} WHERE {qn('integration_id')} = %s "
                f"AND {qn('profile_id')} = %s), (SELECT {qn('id')} FROM {qn(configurations)} "
                f"WHERE {qn('integration_id')} = %s AND {qn('is_default')} = %s))",
                [self.pk, profile.pk, self.pk, True])
            (pk,) = cursor.fetchone()
        configuration = rows.get(Configuration, pk)
        configuration.integration = self
        return configuration

    def summary(self) -> str:
        """A one-line description for lists: the Default configuration's, as the kind writes it."""
        return self.default_configuration.summary()

    def share_with(self, user: Any, profiles: "Iterable[Profile] | None" = None) -> None:
        """Let ``user`` (a Runner) query this integration under ``profiles`` (all of them by default)."""
        for profile in Profile.objects.all() if profiles is None else profiles:
            Share.objects.get_or_create(integration=self, user=user, profile=profile)


class Configuration(models.Model):
    """Where an integration connects and with which credentials, for some profiles.

    Non-secret values are JSON; secrets are one encrypted blob. With fetched
    credentials the fields hold ``{{workflow.response...}}`` bindings that a
    worker renders from the workflow's response (run under the query's profile).
    """

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="configurations")
    # The Default configuration serves every profile that has none of its own.
    is_default = models.BooleanField(default=False)
    profiles = models.ManyToManyField(Profile, through="ConfigurationProfile", blank=True, related_name="+")
    config = models.JSONField(default=dict, blank=True)
    secrets_encrypted = models.TextField(blank=True, default="")
    fetch_credentials = models.BooleanField("Fetch credentials dynamically", default=False)
    credentials_workflow = models.ForeignKey(
        "workflows.Workflow", verbose_name="Workflow", null=True, blank=True, on_delete=models.PROTECT,
        related_name="configurations",
    )
    credentials_cache_s = models.PositiveIntegerField(
        "Cache credentials for (seconds)", default=300, validators=[MaxValueValidator(86400)],
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Bumped on every save: workers compare it to drop cached credentials.
    revision = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-is_default", "pk"]
        constraints = [models.UniqueConstraint(fields=["integration"], condition=models.Q(is_default=True),
                                               name="one_default_configuration_per_integration")]

    def __str__(self) -> str:
        return f"{self.integration.name} · {self.label}"

    @property
    def label(self) -> str:
        """"Default", or the names of the profiles it serves (e.g. "Staging")."""
        if self.is_default:
            return "Default"
        return ", ".join(p.name for p in self.profiles.all()) or "No profile"

    @property
    def kind_impl(self) -> kinds.Kind:
        return self.integration.kind_impl

    def secrets(self) -> dict[str, Any]:
        return crypto.decrypt_json(self.secrets_encrypted)

    def set_secrets(self, values: dict[str, Any]) -> None:
        self.secrets_encrypted = crypto.encrypt_json(values) if values else ""

    def has_secret(self, name: str) -> bool:
        return bool(self.secrets().get(name))

    def summary(self) -> str:
        """A one-line description, as the kind writes it (e.g. ``app_user@db.internal:5432/app``)."""
        try:
            return self.kind_impl.summary(self.config)
        except kinds.NotRegistered:
            return ""

    def served_profiles(self) -> list[Profile]:
        """The profiles whose queries this configuration answers."""
        if not self.is_default:
            return list(self.profiles.all())
        taken = ConfigurationProfile.objects.filter(integration=self.integration_id).values("profile")
        return list(Profile.objects.exclude(pk__in=taken))

    def test_profile(self) -> Profile | None:
        """The profile a Test connection or a preview of this configuration runs under: one it serves."""
        served = self.served_profiles()
        default = Profile.objects.default()
        return default if default in served or not served else served[0]


class ConfigurationProfile(models.Model):
    """A profile served by a configuration; a profile has at most one configuration per integration."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="+")
    configuration = models.ForeignKey(Configuration, on_delete=models.CASCADE, related_name="+")
    profile = models.ForeignKey(Profile, on_delete=models.PROTECT, related_name="configuration_links")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["integration", "profile"],
                                               name="one_configuration_per_profile")]


class Share(models.Model):
    """A Runner may query an integration under a profile."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="shares")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="integration_shares")
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["integration", "user", "profile"], name="one_share")]


class QueryRun(BackgroundRun):
    """One query a user ran: the record, and the (capped) result of each of its statements."""

    task_name = "integrations.run_query"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="runs")
    # The configuration that answered for the run's profile (when it was submitted).
    configuration = models.ForeignKey(Configuration, null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
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
    # The saved configuration being edited, whose stored secrets a blank field keeps.
    configuration = models.ForeignKey(Configuration, null=True, blank=True, on_delete=models.CASCADE,
                                      related_name="+")
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


class SchemaRead(BackgroundRun):
    """The integration's schemas, tables, views and columns as a worker read them under a profile
    (integrations/schema.py). The newest one that succeeded is the Schema panel's and completion's
    cache for that integration and profile; **Refresh schema** queues another."""

    task_name = "integrations.read_schema"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="schema_reads")
    configuration = models.ForeignKey(Configuration, null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # {"schemas": [{"name", "default", "tables": [{"name", "kind", "columns": [{"name", "type", "pk"}]}]}],
    #  "truncated": bool}
    schema = models.JSONField(null=True, blank=True)
    table_count = models.IntegerField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["integration", "profile", "-created_at"]),
                   models.Index(fields=["status", "lease_until"]), models.Index(fields=["status", "sent_at"])]


class QueryDraft(models.Model):
    """What a user last typed in an integration's Query box, saved as they type: restored on reload
    and on their next visit."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="+")
    text = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "integration"], name="one_draft_per_user_and_integration")]


class SavedQuery(models.Model):
    """A query saved on an integration (**Save query**), with the chart it is seen as. Its author and
    Builders may change it; shared, the integration's Runners may run it but not change it."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="saved_queries")
    name = models.CharField("Query name", max_length=100)
    description = models.CharField("Description", max_length=300, blank=True, default="")
    text = models.TextField("Query")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    shared = models.BooleanField("Share with the integration's Runners", default=False)
    # {"type": "bar", "x": "item", "y": ["qty"]}, or None: seen as a table.
    chart = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["integration", "name"], name="unique_saved_query_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def chart_json(self) -> str:
        return json.dumps(self.chart) if self.chart else ""
