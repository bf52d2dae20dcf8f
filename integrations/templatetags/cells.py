from __future__ import annotations

from django import template

from ..kinds.cells import Cell, cell_text

register = template.Library()


@register.filter(name="cell")
def cell_filter(value: Cell) -> str:
    """A result cell as it reads on the page (see kinds/cells.py)."""
    return cell_text(value)
