from django.db import migrations


class Migration(migrations.Migration):
    """The connection fields and the shares now live on Configuration and Share."""

    dependencies = [("integrations", "0011_default_configurations")]

    operations = [
        migrations.RemoveField(
            model_name='integration',
            name='config',
        ),
        migrations.RemoveField(
            model_name='integration',
            name='credentials_cache_s',
        ),
        migrations.RemoveField(
            model_name='integration',
            name='credentials_workflow',
        ),
        migrations.RemoveField(
            model_name='integration',
            name='fetch_credentials',
        ),
        migrations.RemoveField(
            model_name='integration',
            name='revision',
        ),
        migrations.RemoveField(
            model_name='integration',
            name='secrets_encrypted',
        ),
        migrations.RemoveField(
            model_name='integration',
            name='shared_with',
        ),
    ]
