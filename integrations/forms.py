"""The integration form, built from the kind's declared fields."""
from __future__ import annotations

from typing import Any

from django import forms

from . import kinds
from .kinds.base import FieldSpec, Kind
from .models import Integration

MAX_SQL_CHARS = 1_000_000


class IntegrationForm(forms.Form):
    kind = forms.ChoiceField(label="Kind", choices=kinds.choices)
    name = forms.CharField(label="Name", max_length=100, help_text="Shown in lists; must be unique.")
    statement_timeout_s = forms.IntegerField(
        label="Statement timeout (seconds)", initial=30, min_value=1, max_value=3600,
        help_text="A query running longer than this is stopped by the database.",
    )

    def __init__(self, *args: Any, kind: Kind, instance: Integration | None = None, **kwargs: Any) -> None:
        super().__init__(*args, label_suffix="", **kwargs)
        self.kind_impl = kind
        self.instance = instance
        self.fields["kind"].initial = kind.slug
        if instance is not None:
            # The kind of a saved integration is fixed: its stored values belong to it.
            self.fields["kind"].disabled = True
            self.fields["kind"].initial = instance.kind
        for spec in kind.fields:
            self.fields[spec.name] = _form_field(spec, editing=instance is not None and instance.has_secret(spec.name))
        if instance is not None and not self.is_bound:
            self.initial.update(name=instance.name, statement_timeout_s=instance.statement_timeout_s, **instance.config)

    def kind_field_names(self) -> list[str]:
        return [spec.name for spec in self.kind_impl.fields]

    def kind_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.kind_field_names()]

    def values(self) -> dict[str, Any]:
        """The kind's values from cleaned data (a blank secret is left out: it keeps the stored one)."""
        secret = set(self.kind_impl.secret_fields())
        return {
            name: self.cleaned_data.get(name)
            for name in self.kind_field_names()
            if not (name in secret and not self.cleaned_data.get(name))
        }

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
        literal = {n: cleaned.get(n) for n in self.kind_field_names() if n in cleaned}
        for field, message in self.kind_impl.validate(literal).items():
            if field not in self.errors:
                self.add_error(field, message)
        return cleaned


def _form_field(spec: FieldSpec, *, editing: bool) -> forms.Field:
    common: dict[str, Any] = dict(label=spec.label, required=spec.required, help_text=spec.help_text)
    if spec.secret:
        help_text = "Stored encrypted; never shown again."
        if editing:
            help_text = "Leave blank to keep the stored value."
        return forms.CharField(
            **{**common, "required": False, "help_text": help_text}, max_length=1000,
            widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
            strip=False,
        )
    if spec.type == "integer":
        return forms.IntegerField(**common, initial=spec.default, min_value=0)
    if spec.type == "choice":
        return forms.ChoiceField(**common, choices=spec.choices, initial=spec.default)
    return forms.CharField(
        **common, initial=spec.default, max_length=1000,
        widget=forms.TextInput(attrs={"placeholder": spec.placeholder, "autocomplete": "off", "spellcheck": "false"}),
    )


class QueryForm(forms.Form):
    sql = forms.CharField(
        label="Query", max_length=MAX_SQL_CHARS, strip=False,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "code"}),
        error_messages={"required": "Write a query to run.",
                        "max_length": "The query is longer than %(limit_value)s characters."},
    )

    def clean_sql(self) -> str:
        sql = self.cleaned_data["sql"]
        if not sql.strip():
            raise forms.ValidationError("Write a query to run.")
        if "\x00" in sql:
            raise forms.ValidationError("The query contains a NUL character.")
        return sql
