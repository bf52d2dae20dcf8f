"""What bindings resolve to, shown on the form: evaluated against the last preview's MASKED output.

The web process never sees a fetched secret. It only has the masked output of
the workflow's last successful run: enough to check that a bound key exists and
to show non-secret values; values under secret-looking keys show as the mask.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from credtool.masking import MASK
from workflows.bindings import Binding, BindingError, evaluate_text, has_bindings, parse
from runs.models import RunStatus
from workflows.models import Workflow, WorkflowRun

from .kinds.base import Kind


@dataclass
class ResolvedField:
    label: str
    binding: str
    shown: str
    error: str = ""


def last_preview(workflow: Workflow) -> WorkflowRun | None:
    return workflow.runs.filter(status=RunStatus.SUCCEEDED).order_by("-created_at", "-pk").first()


def check_against_last_preview(text: str, workflow: Workflow) -> str:
    run = last_preview(workflow)
    if run is None:
        return ""  # nothing to check against yet; the worker checks at query time
    try:
        if any(_reaches_mask(b.path, run.output) for b in parse(text) if isinstance(b, Binding)):
            return ""  # a path into a masked subtree cannot be checked here; the worker will
        evaluate_text(text, {workflow.name: run.output})
    except BindingError as exc:
        return f"{exc} (in the last run of {workflow.name})"
    return ""


def _reaches_mask(path: tuple[str | int, ...], output: Any) -> bool:
    value = output
    for key in path:
        if value == MASK:
            return True
        if isinstance(value, dict) and isinstance(key, str) and key in value:
            value = value[key]
        elif isinstance(value, list) and isinstance(key, int) and -len(value) <= key < len(value):
            value = value[key]
        else:
            return False
    return False


def resolved_fields(kind: Kind, values: dict[str, Any], workflow: Workflow, output: Any) -> list[ResolvedField]:
    """Each bound field with what it resolves to from ``output`` (masked), secrets shown masked."""
    secret = set(kind.secret_fields())
    rows = []
    for spec in kind.fields:
        text = values.get(spec.name)
        if not (isinstance(text, str) and has_bindings(text)):
            continue
        try:
            value = evaluate_text(text, {workflow.name: output})
            shown = MASK if spec.name in secret else str(value)
            rows.append(ResolvedField(spec.label, text, shown))
        except BindingError as exc:
            rows.append(ResolvedField(spec.label, text, "", str(exc)))
    return rows
