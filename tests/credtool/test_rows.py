"""credtool.rows reads a row as the ORM would: the same values, of the same types, on either database."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from credtool import rows
from integrations.models import Configuration, Integration, QueryRun

pytestmark = pytest.mark.django_db


def same_fields(a, b) -> None:
    for field in type(a)._meta.concrete_fields:
        left, right = getattr(a, field.attname), getattr(b, field.attname)
        assert (left, type(left)) == (right, type(right)), field.name


def test_a_row_read_by_rows_is_the_row_the_orm_reads():
    integration = Integration.objects.create_with_default(
        name="Rows", kind="postgres", config={"host": "db.internal", "port": 5432, "database": "app", "username": "u"},
        secrets={"password": "s3cret"})
    run = QueryRun.objects.create(
        integration=integration, configuration=integration.default_configuration, sql="select 1",
        status="succeeded", started_at=timezone.now(), finished_at=timezone.now(), duration_ms=1.25, row_count=1,
        cancel_requested=True, results=[{"columns": ["a"], "rows": [[1, None, "é", {"k": [1.5]}]]}])
    user = get_user_model().objects.create_user("ada", "ada@example.com", "pw-12345678")
    for model, pk in ((QueryRun, run.pk), (Configuration, integration.default_configuration.pk),
                      (Integration, integration.pk), (get_user_model(), user.pk)):
        loaded = rows.get(model, pk)
        same_fields(loaded, model.objects.get(pk=pk))
        assert not loaded._state.adding  # saved as an update, as a queryset's instance would be


def test_a_missing_row_is_does_not_exist():
    with pytest.raises(QueryRun.DoesNotExist):
        rows.get(QueryRun, 987654)
    assert rows.values(QueryRun, 987654, [QueryRun._meta.get_field("status")]) is None
