from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django import template

from ..kinds.cells import Cell, cell_text

register = template.Library()

# Longer cells are shown cut (with an ellipsis) and expand on click: one long note
# must not push every other column off the screen.
LONG_CELL_CHARS = 80

# How PostgreSQL and MySQL print numbers that are not JSON integers (numeric,
# decimal, floats): "120.50", "-3", "1e+20", ".5". Money ("$12.50") is text.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# PostgreSQL's floats may also hold these; a float column with one NaN is still numeric.
_NON_FINITE = frozenset({"NaN", "Infinity", "-Infinity"})


def is_number(cell: Cell) -> bool:
    """Whether a cell reads as a number (booleans, though ints in Python, are not)."""
    if isinstance(cell, bool):
        return False
    if isinstance(cell, int):
        return True
    return isinstance(cell, str) and (cell in _NON_FINITE or _NUMBER.fullmatch(cell) is not None)


def numeric_column(cells: list[Cell]) -> bool:
    """A column is numeric when every non-NULL cell is a number, and one at least is a finite one."""
    finite = False
    for cell in cells:
        if cell is None:
            continue
        if not is_number(cell):
            return False
        finite = finite or cell not in _NON_FINITE
    return finite


@dataclass(frozen=True)
class GridColumn:
    name: str
    numeric: bool


@dataclass(frozen=True)
class GridCell:
    text: str
    # Space-separated classes for the <td>: "null", "num", "long". The grid script reads a
    # column's "num" from its cells (headers stay plain <th>name</th>).
    classes: str


@dataclass(frozen=True)
class Grid:
    columns: list[GridColumn]
    rows: list[list[GridCell]]


@register.filter(name="cell")
def cell_filter(value: Cell) -> str:
    """A result cell as it reads on the page (see kinds/cells.py)."""
    return cell_text(value)


@register.filter(name="grid")
def grid_filter(result: dict[str, Any]) -> Grid:
    """A statement's result as the result grid shows it: which columns are numeric (right-aligned,
    sorted as numbers by assets/src/grid.js) and how each cell is marked (NULL, number, long)."""
    names: list[str] = result.get("columns") or []
    rows: list[list[Cell]] = result.get("rows") or []
    numeric = [numeric_column([row[i] for row in rows if i < len(row)]) for i in range(len(names))]
    grid_rows = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            num = numeric[i] if i < len(numeric) else False
            if value is None:
                cells.append(GridCell("NULL", "null num" if num else "null"))
                continue
            text = cell_text(value)
            classes = "num" if num else ("long" if len(text) > LONG_CELL_CHARS else "")
            cells.append(GridCell(text, classes))
        grid_rows.append(cells)
    return Grid([GridColumn(name, num) for name, num in zip(names, numeric)], grid_rows)
