from django.db import migrations


def create(apps, schema_editor):
    Profile = apps.get_model("profiles", "Profile")
    for key, name in (("production", "Production"), ("staging", "Staging")):
        Profile.objects.get_or_create(key=key, defaults={"name": name})


class Migration(migrations.Migration):
    """Production and Staging exist from the start."""

    dependencies = [("profiles", "0001_initial")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
