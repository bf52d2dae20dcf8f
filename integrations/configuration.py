"""Saving an integration's configuration from its form."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from .forms import IntegrationForm
from .models import Integration


@transaction.atomic
def save(form: IntegrationForm, user: AbstractBaseUser | None) -> Integration:
    """Create or update the integration; a blank secret keeps the stored one."""
    kind = form.kind_impl
    integration = form.instance or Integration(kind=kind.slug, created_by=user)
    values = form.values()
    secret_names = set(kind.secret_fields())
    integration.name = form.cleaned_data["name"]
    integration.statement_timeout_s = form.cleaned_data["statement_timeout_s"]
    integration.config = {k: v for k, v in values.items() if k not in secret_names}
    secrets = integration.secrets() if integration.pk else {}
    secrets.update({k: v for k, v in values.items() if k in secret_names})
    integration.set_secrets(secrets)
    if integration.pk:
        integration.revision += 1
    integration.save()
    return integration

