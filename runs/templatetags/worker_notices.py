"""{% load worker_notices %}: what a run's page says when no worker would pick the run up."""
from __future__ import annotations

from django import template

from runs import workers
from runs.models import BackgroundRun

register = template.Library()


@register.simple_tag
def unserved_message(run: BackgroundRun | None) -> str:
    """"" unless ``run`` is queued and no live worker serves its profile (``runs.workers``)."""
    return workers.unserved_message(run) if run is not None else ""
