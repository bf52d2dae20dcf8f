"""Saving an integration's configuration from its form, and saying what changed."""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from workflows.bindings import has_bindings

from .forms import IntegrationForm
from .models import Integration


@transaction.atomic
def save(form: IntegrationForm, user: AbstractBaseUser | None) -> tuple[Integration, list[str]]:
    """Create or update the integration; returns it and the names of the fields whose stored
    value changed (for the audit log: secrets are compared, never named with their values).

    A blank secret keeps the stored one (the form has checked that it still goes
    where it was stored for). With fetched credentials, a secret field holding a
    binding is stored as configuration (the binding is not a secret: the value
    it resolves to is).
    """
    kind = form.kind_impl
    integration = form.instance or Integration(kind=kind.slug, created_by=user)
    before = _snapshot(integration) if integration.pk else {}
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
    after = _snapshot(integration, shared_with=form.cleaned_data.get("shared_with"))
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    if integration.pk and not changed:
        return integration, []  # nothing changed: no new revision, no refetch of credentials
    if integration.pk:
        integration.revision += 1
    integration.save()
    if "shared_with" in form.cleaned_data:
        integration.shared_with.set(form.cleaned_data["shared_with"])
    return integration, changed


def _snapshot(integration: Integration, *, shared_with: Any = None) -> dict[str, Any]:
    """Every stored value by field name; kind fields by their own names, secrets by their value."""
    values: dict[str, Any] = {
        "name": integration.name,
        "statement_timeout_s": integration.statement_timeout_s,
        "read_only": integration.read_only,
        "fetch_credentials": integration.fetch_credentials,
        "credentials_workflow": integration.credentials_workflow_id,
        "credentials_cache_s": integration.credentials_cache_s if integration.fetch_credentials else None,
        "shared_with": sorted(u.pk for u in shared_with) if shared_with is not None else (
            sorted(integration.shared_with.values_list("pk", flat=True)) if integration.pk else []),
    }
    values.update({name: str(value) for name, value in integration.config.items()})
    values.update({name: str(value) for name, value in integration.secrets().items()})
    return {name: value for name, value in values.items() if value not in (None, "", [], False) or integration.pk}
