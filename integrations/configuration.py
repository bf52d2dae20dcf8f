"""Saving an integration's configuration from its form."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from workflows.bindings import has_bindings

from .forms import IntegrationForm
from .models import Integration


@transaction.atomic
def save(form: IntegrationForm, user: AbstractBaseUser | None) -> Integration:
    """Create or update the integration; a blank secret keeps the stored one.

    With fetched credentials, a secret field holding a binding is stored as
    configuration (the binding is not a secret: the value it resolves to is).
    """
    kind = form.kind_impl
    integration = form.instance or Integration(kind=kind.slug, created_by=user)
    fetching = form.cleaned_data.get("fetch_credentials", False)
    values = form.values()
    secret_names = set(kind.secret_fields())
    secrets = integration.secrets() if integration.pk else {}
    config = {k: v for k, v in values.items() if k not in secret_names}
    for name in secret_names:
        if name not in values:  # left blank: keep what was stored, binding or secret
            if name in integration.config:
                config[name] = integration.config[name]
            continue
        if fetching and has_bindings(values[name]):
            config[name] = values[name]
            secrets.pop(name, None)
        else:
            secrets[name] = values[name]
    integration.name = form.cleaned_data["name"]
    integration.statement_timeout_s = form.cleaned_data["statement_timeout_s"]
    integration.read_only = form.cleaned_data.get("read_only", False)
    integration.fetch_credentials = fetching
    integration.credentials_workflow = form.cleaned_data.get("credentials_workflow") if fetching else None
    cache_s = form.cleaned_data.get("credentials_cache_s")
    integration.credentials_cache_s = 300 if cache_s is None else cache_s
    integration.config = config
    integration.set_secrets(secrets)
    if integration.pk:
        integration.revision += 1
    integration.save()
    if "shared_with" in form.cleaned_data:
        integration.shared_with.set(form.cleaned_data["shared_with"])
    return integration
