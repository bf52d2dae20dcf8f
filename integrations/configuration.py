"""Saving an integration and its configurations from their forms, and saying what changed."""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from workflows.bindings import has_bindings

from .forms import ConfigurationForm, IntegrationForm
from .models import Configuration, ConfigurationProfile, Integration, Share


@transaction.atomic
def save(form: IntegrationForm, user: AbstractBaseUser | None) -> tuple[Integration, list[str]]:
    """Create or update the integration and its Default configuration; returns it and the names
    of the fields whose stored value changed (for the audit log: secrets are compared, never
    named with their values)."""
    integration = form.instance or Integration(kind=form.kind_impl.slug, created_by=user)
    before = _integration_snapshot(integration) if integration.pk else {}
    integration.name = form.cleaned_data["name"]
    integration.statement_timeout_s = form.cleaned_data["statement_timeout_s"]
    integration.read_only = form.cleaned_data.get("read_only", False)
    shares = form.shares()
    after = _integration_snapshot(integration, shares=shares)
    changed = _changed(before, after, created=integration.pk is None)
    if changed:
        integration.save()
    if "shared_with" in changed:
        for share in integration.shares.all():
            if (share.user_id, share.profile_id) not in shares:
                share.delete()
        Share.objects.bulk_create([Share(integration=integration, user_id=u, profile_id=p) for u, p in shares],
                                  ignore_conflicts=True)
    default = form.configuration or Configuration(integration=integration, is_default=True)
    return integration, sorted(changed + _save_configuration(form, default))


@transaction.atomic
def save_configuration(form: ConfigurationForm, integration: Integration) -> tuple[Configuration, list[str]]:
    """Create or update a configuration other than the Default one, with the profiles it serves."""
    configuration = form.configuration or Configuration(integration=integration)
    before = sorted(configuration.profiles.values_list("pk", flat=True)) if configuration.pk else []
    chosen = sorted(p.pk for p in form.cleaned_data["profiles"])
    changed = _save_configuration(form, configuration)
    if chosen != before:
        ConfigurationProfile.objects.filter(configuration=configuration).exclude(profile__in=chosen).delete()
        for profile_id in set(chosen) - set(before):
            ConfigurationProfile.objects.create(integration=integration, configuration=configuration,
                                                profile_id=profile_id)
        changed = sorted({*changed, "profiles"})
    return configuration, changed


def _save_configuration(form: ConfigurationForm, configuration: Configuration) -> list[str]:
    """Apply the form's kind fields and credentials settings; save only if something changed.

    A blank secret keeps the stored one (the form has checked that it still goes
    where it was stored for). With fetched credentials, a secret field holding a
    binding is stored as configuration (the binding is not a secret: the value
    it resolves to is).
    """
    kind = form.kind_impl
    before = _configuration_snapshot(configuration) if configuration.pk else {}
    fetching = form.cleaned_data.get("fetch_credentials", False)
    values = form.values()
    secret_names = set(kind.secret_fields())
    secrets = configuration.secrets() if configuration.pk else {}
    config = {k: v for k, v in values.items() if k not in secret_names}
    for name in secret_names:
        if name not in values:  # left blank: keep what was stored, binding or secret
            if name in configuration.config:
                config[name] = configuration.config[name]
            continue
        if fetching and has_bindings(values[name]):
            config[name] = values[name]
            secrets.pop(name, None)
        else:
            secrets[name] = values[name]
    configuration.fetch_credentials = fetching
    configuration.credentials_workflow = form.cleaned_data.get("credentials_workflow") if fetching else None
    cache_s = form.cleaned_data.get("credentials_cache_s")
    configuration.credentials_cache_s = 300 if cache_s is None else cache_s
    configuration.config = config
    configuration.set_secrets(secrets)
    changed = _changed(before, _configuration_snapshot(configuration), created=configuration.pk is None)
    if configuration.pk and not changed:
        return []  # nothing changed: no new revision, no refetch of credentials
    if configuration.pk:
        configuration.revision += 1
    configuration.save()
    return changed


def _changed(before: dict[str, Any], after: dict[str, Any], *, created: bool) -> list[str]:
    if created:
        return sorted(name for name, value in after.items() if value not in (None, "", [], False))
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def _integration_snapshot(integration: Integration, *, shares: set[tuple[int, int]] | None = None) -> dict[str, Any]:
    if shares is None:
        shares = set(integration.shares.values_list("user", "profile")) if integration.pk else set()
    return {"name": integration.name, "statement_timeout_s": integration.statement_timeout_s,
            "read_only": integration.read_only, "shared_with": sorted(shares)}


def _configuration_snapshot(configuration: Configuration) -> dict[str, Any]:
    """Every stored value by field name; kind fields by their own names, secrets by their value."""
    values: dict[str, Any] = {
        "fetch_credentials": configuration.fetch_credentials,
        "credentials_workflow": configuration.credentials_workflow_id,
        "credentials_cache_s": configuration.credentials_cache_s if configuration.fetch_credentials else None,
    }
    values.update({name: str(value) for name, value in configuration.config.items()})
    values.update({name: str(value) for name, value in configuration.secrets().items()})
    return values
