"""How a database's values become cells: the one rule for the page, CSV downloads and workflow outputs.

A cell is stored as JSON: ``null`` for NULL, a JSON boolean for a boolean, a
JSON integer for an integer type, and for everything else the database's own
text for the value, exactly as its command-line client prints it
(``infinity``, ``0044-03-15 BC``, ``1 day 02:00:00``, ``[1,5)``, ``{1,2,3}``,
``$12.50``, ``NaN``, ``\\x00ff``). A kind gets that text from the database
where it can (PostgreSQL: text loaders, see kinds/postgres.py); ``cell_value``
converts what a driver hands over as Python objects, and kinds add only their
own types. Floats are text too: JSON has no NaN or infinity, and the text keeps
the database's own digits.

``cell_text`` is how a cell reads in a page or a CSV file: booleans as
``true``/``false`` (never Python's ``True``), NULL as the empty string (pages
mark it apart from the text "NULL").
"""
from __future__ import annotations

import datetime
import decimal
import json
import math
import uuid
from typing import Any

Cell = None | bool | int | str


def cell_value(value: Any) -> Cell:
    """A driver's Python value as a cell."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return _interval_text(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _interval_text(value: datetime.timedelta) -> str:
    """``1 day 02:00:00``, as PostgreSQL and MySQL print durations."""
    sign = "-" if value < datetime.timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{seconds:02d}" + (f".{value.microseconds:06d}" if value.microseconds else "")
    if value.days:
        return f"{sign}{value.days} day{'s' if value.days != 1 else ''} {clock}"
    return sign + clock


def cell_text(cell: Cell) -> str:
    """A cell as it reads on a page or in a CSV file."""
    if cell is None:
        return ""
    if cell is True:
        return "true"
    if cell is False:
        return "false"
    return str(cell)
