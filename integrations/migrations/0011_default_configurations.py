from django.db import migrations

MOVED = ("config", "secrets_encrypted", "fetch_credentials", "credentials_workflow_id", "credentials_cache_s",
         "revision")


def forward(apps, schema_editor):
    """Each integration's connection becomes its Default configuration, secrets still encrypted as
    they were; whoever it was shared with may use it under every profile; past runs ran in Production."""
    Integration = apps.get_model("integrations", "Integration")
    Configuration = apps.get_model("integrations", "Configuration")
    Share = apps.get_model("integrations", "Share")
    Profile = apps.get_model("profiles", "Profile")
    QueryRun = apps.get_model("integrations", "QueryRun")
    profiles = list(Profile.objects.all())
    for integration in Integration.objects.all():
        default = Configuration.objects.create(
            integration=integration, is_default=True, **{name: getattr(integration, name) for name in MOVED})
        QueryRun.objects.filter(integration=integration).update(configuration=default)
        for user in integration.shared_with.all():
            Share.objects.bulk_create([Share(integration=integration, user=user, profile=p) for p in profiles])
    production = Profile.objects.filter(key="production").first()
    if production is not None:
        QueryRun.objects.filter(profile=None).update(profile=production)


def backward(apps, schema_editor):
    """The Default configuration goes back onto its integration; a user shared under any profile is shared."""
    Configuration = apps.get_model("integrations", "Configuration")
    Share = apps.get_model("integrations", "Share")
    for default in Configuration.objects.filter(is_default=True).select_related("integration"):
        integration = default.integration
        for name in MOVED:
            setattr(integration, name, getattr(default, name))
        integration.save()
    for share in Share.objects.all():
        share.integration.shared_with.add(share.user_id)


class Migration(migrations.Migration):
    dependencies = [("integrations", "0010_configurations_and_shares")]

    operations = [migrations.RunPython(forward, backward)]
