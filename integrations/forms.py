"""The integration form, built from the kind's declared fields."""
from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from workflows.bindings import BindingError, has_bindings, parse
from workflows.models import Workflow

from . import kinds, secrets_policy
from .kinds import http_request
from .kinds.base import FieldSpec, Kind
from .models import Integration

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


class IntegrationForm(forms.Form):
    kind = forms.ChoiceField(label="Kind", choices=kinds.choices)
    name = forms.CharField(label="Name", max_length=100, help_text="Shown in lists; must be unique.")
    fetch_credentials = forms.BooleanField(
        label="Fetch credentials dynamically", required=False,
        help_text="A workflow fetches the credentials (e.g. from AWS Secrets Manager) on the worker before "
                  "each query; fields below may then hold bindings such as {{getSecrets.response.host}}.",
    )
    credentials_workflow = forms.ModelChoiceField(
        label="Workflow", queryset=Workflow.objects.all(), required=False, empty_label="Choose a workflow…",
        to_field_name="pk",
    )
    credentials_cache_s = forms.IntegerField(
        label="Cache credentials for (seconds)", initial=300, min_value=0, max_value=86400, required=False,
        help_text="The worker reuses fetched credentials this long; 0 runs the workflow before every query. "
                  "Editing the integration or the workflow, or a rejected password, fetches them again.",
    )
    statement_timeout_s = forms.IntegerField(
        label="Statement timeout (seconds)", initial=30, min_value=1, max_value=3600,
        help_text="A query (all its statements together) running longer than this is stopped.",
    )
    read_only = forms.BooleanField(
        label="Read-only", required=False,
        help_text="Queries run in a read-only session and transaction: the database refuses writes and DDL, "
                  "and statements that would end the transaction or undo read-only are refused.",
    )
    shared_with = forms.ModelMultipleChoiceField(
        label="Shared with", required=False, queryset=get_user_model().objects.filter(is_active=True),
        widget=forms.CheckboxSelectMultiple,
        help_text="Runners who may query this integration (they never see its configuration).",
    )

    def __init__(self, *args: Any, kind: Kind, instance: Integration | None = None, **kwargs: Any) -> None:
        super().__init__(*args, label_suffix="", **kwargs)
        self.kind_impl = kind
        self.instance = instance
        self.fields["kind"].initial = kind.slug
        self.fields["statement_timeout_s"].label = kind.timeout_label
        if instance is not None:
            # The kind of a saved integration is fixed: its stored values belong to it.
            self.fields["kind"].disabled = True
            self.fields["kind"].initial = instance.kind
        for spec in kind.fields:
            stored = instance is not None and instance.has_secret(spec.name)
            self.fields[spec.name] = _form_field(spec, editing=stored)
        if instance is not None and not self.is_bound:
            self.initial.update(
                name=instance.name, statement_timeout_s=instance.statement_timeout_s,
                fetch_credentials=instance.fetch_credentials, credentials_workflow=instance.credentials_workflow_id,
                credentials_cache_s=instance.credentials_cache_s, read_only=instance.read_only,
                shared_with=list(instance.shared_with.values_list("pk", flat=True)), **instance.config,
            )

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

    def changed_fields(self) -> list[str]:
        """Names of the fields the user changed: for the audit log, never their values."""
        return sorted(self.changed_data)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        clash = Integration.objects.filter(name__iexact=name)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError("An integration with this name already exists.")
        return name

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
        if self.instance is None:
            return
        kind = self.kind_impl
        if secrets_policy.same_destination(kind, self.instance, cleaned):
            return
        labels = [kind.field(name).label.lower() for name in kind.secret_destination_fields]
        where = " or ".join([", ".join(labels[:-1]), labels[-1]]) if len(labels) > 1 else labels[0]
        for name in kind.secret_fields():
            if not cleaned.get(name) and self.instance.has_secret(name) and name not in self.errors:
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
