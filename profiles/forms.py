"""Adding and renaming profiles."""
from __future__ import annotations

from typing import Any

from django import forms

from .models import Profile


class ProfileForm(forms.ModelForm):
    """Name and key; the key of a saved profile is shown but never changes (workers and steps use it)."""

    class Meta:
        model = Profile
        fields = ["name", "key"]
        help_texts = {"name": "Shown in the Profile selects, e.g. QA."}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, label_suffix="", **kwargs)
        self.fields["key"].widget.attrs.update(spellcheck="false", autocomplete="off", placeholder="qa")
        if self.instance.pk:
            self.fields["key"].disabled = True
            self.fields["key"].help_text = ("Cannot change: steps read it as profile, and workers and Env variables "
                                            f"name it (CREDTOOL_WORKER_PROFILES={self.instance.key}).")

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if Profile.objects.filter(name__iexact=name).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("A profile with this name already exists.")
        return name

    def clean_key(self) -> str:
        key = self.cleaned_data["key"]
        if not self.instance.pk and Profile.objects.filter(key=key).exists():
            raise forms.ValidationError("A profile with this key already exists.")
        return key
