"""The integration form, built from the kind's declared fields."""
from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from profiles.models import Profile
from workflows.bindings import BindingError, has_bindings, parse
from workflows.models import Workflow

from . import kinds, secrets_policy
from .kinds import http_request
from .kinds.base import FieldSpec, Kind
from .models import Configuration, ConfigurationProfile, Integration

MAX_SQL_CHARS = 1_000_000


class SecretInput(forms.PasswordInput):
    """Never renders a stored secret; renders a binding (``{{wf.response.password}}``), which is not one."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs, render_value=False)

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        if isinstance(value, str) and has_bindings(value):
            context["widget"]["value"] = value
            context["widget"]["type"] = "text"
        return context

    def format_value(self, value: Any) -> str | None:
        return value if isinstance(value, str) and has_bindings(value) else None


class ConfigurationForm(forms.Form):
    """Where and how an integration connects, for some profiles: the kind's fields and
    **Fetch credentials dynamically**. A configuration other than the Default one also
    has **Profiles**: the profiles whose queries it answers."""

    fetch_credentials = forms.BooleanField(
        label="Fetch credentials dynamically", required=False,
        help_text="A workflow fetches the credentials (e.g. from AWS Secrets Manager) on the worker before "
                  "each query, under the query's profile; fields below may then hold bindings such as "
                  "{{getSecrets.response.host}}.",
    )
    credentials_workflow = forms.ModelChoiceField(
        label="Workflow", queryset=Workflow.objects.all(), required=False, empty_label="Choose a workflow…",
        to_field_name="pk",
    )
    credentials_cache_s = forms.IntegerField(
        label="Cache credentials for (seconds)", initial=300, min_value=0, max_value=86400, required=False,
        help_text="The worker reuses fetched credentials this long (per profile); 0 runs the workflow before "
                  "every query. Editing the configuration or the workflow, or a rejected password, fetches "
                  "them again.",
    )

    def __init__(self, *args: Any, kind: Kind, integration: Integration | None = None,
                 configuration: Configuration | None = None, with_profiles: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, label_suffix="", **kwargs)
        self.kind_impl = kind
        self.integration = integration
        self.configuration = configuration
        if with_profiles:
            self.fields["profiles"] = forms.ModelMultipleChoiceField(
                label="Profiles", queryset=Profile.objects.all(), widget=forms.CheckboxSelectMultiple,
                help_text="Queries under these profiles use this configuration; every other profile uses Default.",
                error_messages={"required": "Choose the profiles that use this configuration."},
            )
        for spec in kind.fields:
            stored = configuration is not None and configuration.has_secret(spec.name)
            self.fields[spec.name] = _form_field(spec, editing=stored)
        if configuration is not None and not self.is_bound:
            self.initial.update(
                fetch_credentials=configuration.fetch_credentials,
                credentials_workflow=configuration.credentials_workflow_id,
                credentials_cache_s=configuration.credentials_cache_s, **configuration.config,
            )
            if with_profiles:
                self.initial["profiles"] = list(configuration.profiles.values_list("pk", flat=True))

    def kind_field_names(self) -> list[str]:
        return [spec.name for spec in self.kind_impl.fields]

    def kind_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.kind_field_names()]

    @property
    def fetching(self) -> bool:
        return bool(self.cleaned_data.get("fetch_credentials")) if hasattr(self, "cleaned_data") else False

    def values(self) -> dict[str, Any]:
        """The kind's values from cleaned data (a blank secret is left out: it keeps the stored one)."""
        secret = set(self.kind_impl.secret_fields())
        return {
            name: self.cleaned_data.get(name)
            for name in self.kind_field_names()
            if name in self.cleaned_data and not (name in secret and not self.cleaned_data.get(name))
        }

    def clean_profiles(self) -> Any:
        """A profile has at most one configuration per integration: refuse a second, naming the first."""
        chosen = self.cleaned_data["profiles"]
        if self.integration is None:
            return chosen
        links = ConfigurationProfile.objects.filter(integration=self.integration, profile__in=chosen)
        if self.configuration is not None:
            links = links.exclude(configuration=self.configuration)
        for link in links.select_related("profile", "configuration"):
            raise forms.ValidationError(
                f"{link.profile.name} already has a configuration on this integration "
                f"(“{link.configuration.label}”): edit that one, or take {link.profile.name} off it first.")
        return chosen

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        fetching = bool(cleaned.get("fetch_credentials"))
        workflow: Workflow | None = cleaned.get("credentials_workflow")
        if fetching and workflow is None and "credentials_workflow" not in self.errors:
            self.add_error("credentials_workflow", "Choose the workflow that fetches the credentials.")
        literal: dict[str, Any] = {}
        for spec in self.kind_impl.fields:
            if spec.name not in cleaned:
                continue
            raw = cleaned[spec.name]
            if fetching and isinstance(raw, str) and has_bindings(raw) and spec.type not in ("choice", "boolean"):
                self._check_binding(spec, raw, workflow)
                continue
            if spec.type == "integer" and raw not in (None, ""):
                try:
                    raw = int(str(raw).strip())
                except ValueError:
                    message = "Enter a whole number" + (
                        ", or a binding such as {{getSecrets.response.port}} with “Fetch credentials dynamically” on."
                        if has_bindings(str(raw)) else ".")
                    self.add_error(spec.name, message)
                    continue
                cleaned[spec.name] = raw
            literal[spec.name] = raw
        for field, message in self.kind_impl.validate(literal).items():
            if field not in self.errors:
                self.add_error(field, message)
        self._check_kept_secrets(cleaned)
        return cleaned

    def _check_kept_secrets(self, cleaned: dict[str, Any]) -> None:
        """A blank secret keeps the stored one only while it would go where it was stored for."""
        if self.configuration is None:
            return
        kind = self.kind_impl
        if secrets_policy.same_destination(kind, self.configuration, cleaned):
            return
        labels = [kind.field(name).label.lower() for name in kind.secret_destination_fields]
        where = " or ".join([", ".join(labels[:-1]), labels[-1]]) if len(labels) > 1 else labels[0]
        for name in kind.secret_fields():
            if not cleaned.get(name) and self.configuration.has_secret(name) and name not in self.errors:
                self.add_error(name, f"Type the {kind.field(name).label.lower()} again: the {where} changed, and the "
                                     "stored one is only ever sent where it was saved for.")

    def _check_binding(self, spec: FieldSpec, text: str, workflow: Workflow | None) -> None:
        try:
            pieces = parse(text)
        except BindingError as exc:
            self.add_error(spec.name, str(exc))
            return
        if workflow is None:
            return
        from .binding_preview import check_against_last_preview

        for piece in pieces:
            if isinstance(piece, str):
                continue
            if piece.workflow != workflow.name:
                self.add_error(spec.name, f'{piece.source}: no workflow "{piece.workflow}" '
                                          f"(this integration fetches its credentials with {workflow.name})")
                return
        problem = check_against_last_preview(text, workflow)
        if problem:
            self.add_error(spec.name, problem)



class IntegrationForm(ConfigurationForm):
    """An integration (name, kind, policy, sharing) and its Default configuration, in one form."""

    kind = forms.ChoiceField(label="Kind", choices=kinds.choices)
    name = forms.CharField(label="Name", max_length=100, help_text="Shown in lists; must be unique.")
    statement_timeout_s = forms.IntegerField(
        label="Statement timeout (seconds)", initial=30, min_value=1, max_value=3600,
        help_text="A query (all its statements together) running longer than this is stopped, whatever the profile.",
    )
    read_only = forms.BooleanField(
        label="Read-only", required=False,
        help_text="Queries run in a read-only session and transaction: the database refuses writes and DDL, "
                  "and statements that would end the transaction or undo read-only are refused.",
    )
    shared_with = forms.MultipleChoiceField(
        label="Shared with", required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Runners who may query this integration, per profile (they never see its configuration).",
    )

    def __init__(self, *args: Any, kind: Kind, instance: Integration | None = None, **kwargs: Any) -> None:
        super().__init__(*args, kind=kind, integration=instance,
                         configuration=instance.default_configuration if instance is not None else None, **kwargs)
        self.instance = instance
        self.fields["kind"].initial = kind.slug
        self.fields["statement_timeout_s"].label = kind.timeout_label
        self.profiles = list(Profile.objects.all())
        self.users = list(get_user_model().objects.filter(is_active=True).order_by("username"))
        self.fields["shared_with"].choices = [
            (share_value(user.pk, profile.pk), f"{user} · {profile}") for user in self.users for profile in self.profiles]
        if instance is not None:
            # The kind of a saved integration is fixed: its stored values belong to it.
            self.fields["kind"].disabled = True
            self.fields["kind"].initial = instance.kind
        if instance is not None and not self.is_bound:
            self.initial.update(
                name=instance.name, statement_timeout_s=instance.statement_timeout_s, read_only=instance.read_only,
                shared_with=[share_value(u, p) for u, p in instance.shares.values_list("user", "profile")],
            )

    def shared_with_rows(self) -> list[tuple[Any, list[tuple[Profile, str, bool]]]]:
        """The **Shared with** grid: a row per user, a checkbox per profile."""
        chosen = {str(v) for v in (self["shared_with"].value() or [])}
        return [(user, [(profile, share_value(user.pk, profile.pk), share_value(user.pk, profile.pk) in chosen)
                        for profile in self.profiles]) for user in self.users]

    def shares(self) -> set[tuple[int, int]]:
        """The (user id, profile id) pairs checked in **Shared with**."""
        return {tuple(int(part) for part in value.split(":")) for value in self.cleaned_data.get("shared_with", [])}

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        clash = Integration.objects.filter(name__iexact=name)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError("An integration with this name already exists.")
        return name


def share_value(user_id: int, profile_id: int) -> str:
    return f"{user_id}:{profile_id}"


def _form_field(spec: FieldSpec, *, editing: bool) -> forms.Field:
    common: dict[str, Any] = dict(label=spec.label, required=spec.required, help_text=spec.help_text)
    if spec.secret:
        help_text = "Stored encrypted; never shown again."
        if editing:
            help_text = "Leave blank to keep the stored value (only while the connection's destination and user stay the same)."
        return forms.CharField(
            **{**common, "required": False, "help_text": help_text}, max_length=1000,
            widget=SecretInput(attrs={"autocomplete": "new-password", "spellcheck": "false"}), strip=False,
        )
    if spec.type == "choice":
        return forms.ChoiceField(**common, choices=spec.choices, initial=spec.default)
    if spec.type == "boolean":
        return forms.BooleanField(**{**common, "required": False}, initial=spec.default)
    attrs = {"placeholder": spec.placeholder, "autocomplete": "off", "spellcheck": "false"}
    if spec.type == "lines":
        return forms.CharField(**common, initial=spec.default, max_length=10_000, strip=False,
                               widget=forms.Textarea(attrs={**attrs, "rows": 3, "class": "code"}))
    if spec.type == "integer":
        # Text, not a number input: with fetched credentials it may hold a binding.
        attrs.update(inputmode="numeric", size="12")
    return forms.CharField(**common, initial=spec.default, max_length=1000, widget=forms.TextInput(attrs=attrs))


class QueryForm(forms.Form):
    """The "sql" editor: one Query box."""

    sql = forms.CharField(
        label="Query", max_length=MAX_SQL_CHARS, strip=False,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "code"}),
        error_messages={"required": "Write a query to run.",
                        "max_length": "The query is longer than %(limit_value)s characters."},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, label_suffix="", **kwargs)

    def clean_sql(self) -> str:
        sql = self.cleaned_data["sql"]
        if not sql.strip():
            raise forms.ValidationError("Write a query to run.")
        return sql

    def request_text(self) -> str:
        return self.cleaned_data["sql"]

    @classmethod
    def initial_from(cls, text: str) -> dict[str, Any]:
        return {"sql": text}


class HttpRequestForm(forms.Form):
    """The "http" editor: Method, Path and Body."""

    method = forms.ChoiceField(label="Method", choices=[(m, m) for m in http_request.METHODS], initial="GET")
    path = forms.CharField(
        label="Path", required=False, max_length=8000, strip=True,
        widget=forms.TextInput(attrs={"spellcheck": "false", "autocomplete": "off", "class": "code",
                                      "placeholder": "/users?limit=10"}),
        help_text="Joined to the base URL; a query string is allowed.")
    body = forms.CharField(
        label="Body", required=False, max_length=MAX_SQL_CHARS, strip=False,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "class": "code",
                                     "placeholder": '{"name": "value"}'}),
        help_text="JSON, sent with Content-Type: application/json. Leave empty for none.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, label_suffix="", **kwargs)

    def clean_path(self) -> str:
        path = self.cleaned_data["path"]
        if any(c in path for c in "\r\n"):
            raise forms.ValidationError("The path is one line.")
        return path

    def clean_body(self) -> str:
        body = self.cleaned_data["body"]
        if body.strip():
            try:
                json.loads(body)
            except ValueError as exc:
                raise forms.ValidationError(f"The body is not valid JSON: {exc}") from None
        return body

    def request_text(self) -> str:
        data = self.cleaned_data
        return http_request.HttpRequest(data["method"], data["path"], data["body"]).text()

    @classmethod
    def initial_from(cls, text: str) -> dict[str, Any]:
        try:
            request = http_request.parse(text)
        except ValueError:
            return {}
        return {"method": request.method, "path": request.path, "body": request.body}


def request_form_class(kind: Kind) -> type[QueryForm] | type[HttpRequestForm]:
    """The request editor a kind asks for (``Kind.editor``)."""
    return HttpRequestForm if kind.editor == "http" else QueryForm
