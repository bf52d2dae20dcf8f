"""The Recent runs lists on integration and workflow pages: 20 at a time, newest first, **Older runs** after.

Pages are keyset pages (``?before=<id>``: the runs older than that one, in the lists'
order ``-created_at, -pk``), so a run started while someone reads page 2 does not
shift the rows under them, and reading page 50 costs what page 1 does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet, Subquery

PAGE_SIZE = 20


@dataclass(frozen=True)
class RecentRuns:
    runs: list[Any]
    older: int | None  # the ``before`` of the next page; None on the last one
    paged: bool  # not the newest page: the list offers the way back to it


def recent_page(runs: QuerySet, before: str | None, size: int = PAGE_SIZE) -> RecentRuns:
    """``runs`` (ordered newest first) older than the run ``before``, at most ``size`` of them; one query."""
    anchor = int(before) if before and before.isascii() and before.isdigit() and len(before) < 19 else None
    if anchor is not None:
        created = Subquery(runs.model.objects.filter(pk=anchor).values("created_at")[:1])
        runs = runs.filter(Q(created_at__lt=created) | Q(created_at=created, pk__lt=anchor))
    rows = list(runs.order_by("-created_at", "-pk")[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return RecentRuns(rows, rows[-1].pk if more else None, anchor is not None)
