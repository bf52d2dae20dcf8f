"""Saved queries and drafts: who sees and changes which, and the forms that save them.

Everyone who may query an integration may save queries on it and keeps a draft
of what they type in its Query box. Builders and Admins see every saved query;
a Runner sees their own and those shared with the integration's Runners. Only
a query's author, or a Builder, renames, updates or deletes it: a Runner runs a
shared one (it opens in the editor) but cannot change it.
"""
from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from .access import can_configure
from .models import Integration, QueryDraft, SavedQuery

MAX_TEXT = 100_000
CHART_TYPES = ("bar", "line", "scatter")


def visible(user: AbstractBaseUser, integration: Integration) -> QuerySet[SavedQuery]:
    queries = integration.saved_queries.select_related("author")
    return queries if can_configure(user) else queries.filter(Q(author=user) | Q(shared=True))


def may_change(user: AbstractBaseUser, saved: SavedQuery) -> bool:
    return can_configure(user) or (saved.author_id is not None and saved.author_id == user.pk)


def listed(user: AbstractBaseUser, integration: Integration) -> list[SavedQuery]:
    """**Saved queries** as the user sees them, each marked ``changeable`` (Edit shows) or not."""
    queries = list(visible(user, integration))
    for saved in queries:
        saved.changeable = may_change(user, saved)
    return queries


def draft_text(user: AbstractBaseUser, integration: Integration) -> str:
    return QueryDraft.objects.filter(user=user, integration=integration).values_list("text", flat=True).first() or ""


def save_draft(user: AbstractBaseUser, integration: Integration, text: str) -> None:
    QueryDraft.objects.update_or_create(user=user, integration=integration, defaults={"text": text[:MAX_TEXT]})


def chart_config(raw: str | None) -> dict[str, Any] | None:
    """A chart as the grid's Chart tab describes it, checked; None for none or anything malformed."""
    try:
        chart = json.loads(raw or "null")
    except ValueError:
        return None
    if not isinstance(chart, dict) or chart.get("type") not in CHART_TYPES:
        return None
    y = chart.get("y")
    if not isinstance(chart.get("x"), str) or not isinstance(y, list) or not all(isinstance(c, str) for c in y):
        return None
    return {"type": chart["type"], "x": chart["x"][:200], "y": [c[:200] for c in y[:20]]}


class SaveQueryForm(forms.ModelForm):
    """**Save query** beside Run query (prefix "save"): the text is the console's own Query field."""

    # Its fields sit in the console's form: a required Query name would stop Run query itself.
    use_required_attribute = False

    class Meta:
        model = SavedQuery
        fields = ["name", "description", "shared"]
        widgets = {"name": forms.TextInput(attrs={"autocomplete": "off"}),
                   "description": forms.TextInput(attrs={"autocomplete": "off"})}
        help_texts = {"shared": "They may open and run it, not change it."}

    def __init__(self, *args: Any, integration: Integration, **kwargs: Any) -> None:
        super().__init__(*args, label_suffix="", **kwargs)
        self.integration = integration

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        taken = SavedQuery.objects.filter(integration=self.integration, name=name)
        if self.instance.pk:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError(f"There is already a saved query named “{name}” on this integration.")
        return name


class EditSavedQueryForm(SaveQueryForm):
    """The saved query's own page: rename it, change its text, description and sharing."""

    class Meta(SaveQueryForm.Meta):
        fields = ["name", "description", "text", "shared"]
        widgets = {**SaveQueryForm.Meta.widgets,
                   "text": forms.Textarea(attrs={"rows": 10, "class": "code", "spellcheck": "false"})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["text"].widget.attrs["data-editor"] = self.integration.kind
        self.fields["text"].max_length = MAX_TEXT
