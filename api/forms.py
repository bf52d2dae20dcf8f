from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import AbstractBaseUser


class TokenForm(forms.Form):
    name = forms.CharField(
        label="Token name", max_length=100,
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "deploy script"}),
        help_text="What uses it, so that you know which one to revoke.",
        error_messages={"required": "Name the token: say what will use it."},
    )

    def __init__(self, *args: Any, user: AbstractBaseUser, **kwargs: Any) -> None:
        super().__init__(*args, label_suffix="", **kwargs)
        self.user = user

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if self.user.api_tokens.filter(name=name, revoked_at__isnull=True).exists():
            raise forms.ValidationError(f"You already have a token named “{name}”.")
        return name
