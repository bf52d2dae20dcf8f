"""{% load worker_notices %}: what a page says when no worker would pick its runs up."""
from __future__ import annotations

from typing import Any

from django import template

from runs import workers
from runs.models import BackgroundRun

register = template.Library()


@register.simple_tag
def unserved_message(run: BackgroundRun | None) -> str:
    """"" unless ``run`` is queued and no live worker serves its profile (``runs.workers``)."""
    return workers.unserved_message(run) if run is not None else ""


@register.inclusion_tag("runs/_no_worker.html", takes_context=True)
def no_worker_banner(context: template.Context) -> dict[str, Any]:
    """On a page that runs things (``workers.PAGES_THAT_RUN``), the "No worker is running" banner when
    no worker has a live heartbeat; other pages pay no query."""
    request = context.get("request")
    match = getattr(request, "resolver_match", None)
    shown = (match is not None and match.view_name in workers.PAGES_THAT_RUN
             and request.user.is_authenticated and not workers.any_worker_running())
    return {"shown": shown}
