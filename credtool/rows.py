"""One row by its primary key, read with plain SQL and loaded as the ORM would load it.

For the few statements every query's requests make (the signed-in user, the run's
configuration, the finished run): building a statement through the ORM took several
times as long as the database took to answer it (py-spy on the web process under load),
while the values still go through the same converters (the backend's, then the field's)
and the instance through ``Model.from_db``, as a queryset's would.
"""
from __future__ import annotations

from typing import Any, TypeVar

from django.db import connection
from django.db.models import Field, Model

M = TypeVar("M", bound=Model)


def values(model: type[Model], pk: Any, fields: list[Field]) -> list[Any] | None:
    """``fields``' values in the row ``pk`` of ``model``'s table, converted; None if there is none."""
    qn, table = connection.ops.quote_name, model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(qn(f.column) for f in fields)} FROM {qn(table)} "
                       f"WHERE {qn(model._meta.pk.column)} = %s", [pk])
        row = cursor.fetchone()
    if row is None:
        return None
    converted = []
    for field, value in zip(fields, row):
        column = field.get_col(table)
        for convert in [*connection.ops.get_db_converters(column), *column.get_db_converters(connection)]:
            value = convert(value, column, connection)
        converted.append(value)
    return converted


def get(model: type[M], pk: Any) -> M:
    """``model.objects.get(pk=pk)`` (all its concrete fields; ``DoesNotExist`` if there is no such row)."""
    fields = list(model._meta.concrete_fields)
    row = values(model, pk, fields)
    if row is None:
        raise model.DoesNotExist(f"{model._meta.object_name} {pk} does not exist")
    return model.from_db(connection.alias, [f.attname for f in fields], row)
