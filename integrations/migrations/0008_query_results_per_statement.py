"""Query runs keep one result per statement; connection checks join the shared run lifecycle.

The single result of every existing run (columns, rows, truncated) becomes the
first and only entry of ``results``; backwards, the first entry goes back.
"""
from django.db import migrations, models


def results_from_columns(apps, schema_editor):
    QueryRun = apps.get_model("integrations", "QueryRun")
    for run in QueryRun.objects.only("pk", "sql", "columns", "rows", "truncated", "row_count", "status_message").iterator():
        if run.columns or run.status_message:
            run.results = [{"statement": run.sql, "columns": run.columns, "rows": run.rows,
                            "row_count": run.row_count or 0, "truncated": run.truncated,
                            "status": run.status_message}]
            run.save(update_fields=["results"])


def columns_from_results(apps, schema_editor):
    QueryRun = apps.get_model("integrations", "QueryRun")
    for run in QueryRun.objects.only("pk", "results").iterator():
        if run.results:
            first = run.results[0]
            run.columns, run.rows, run.truncated = first["columns"], first["rows"], first["truncated"]
            run.save(update_fields=["columns", "rows", "truncated"])


class Migration(migrations.Migration):

    dependencies = [
        ('integrations', '0007_alter_connectioncheck_status_alter_queryrun_status'),
    ]

    operations = [
        migrations.AddField(
            model_name='queryrun',
            name='results',
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.RunPython(results_from_columns, columns_from_results),
        migrations.RemoveField(
            model_name='queryrun',
            name='columns',
        ),
        migrations.RemoveField(
            model_name='queryrun',
            name='rows',
        ),
        migrations.RemoveField(
            model_name='queryrun',
            name='truncated',
        ),
        migrations.AddField(
            model_name='connectioncheck',
            name='cancel_requested',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='connectioncheck',
            name='lease_until',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='connectioncheck',
            name='sent_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='connectioncheck',
            name='started_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='integration',
            name='read_only',
            field=models.BooleanField(default=False, help_text='Queries run in a read-only session and transaction: no writes, no DDL.', verbose_name='Read-only'),
        ),
    ]
