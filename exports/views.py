"""Download CSV / Download JSON of a query result: start an export, watch it, fetch its file."""
from __future__ import annotations

import io

from django.contrib.auth.decorators import permission_required
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from audit.log import record_event
from integrations.access import profiles_for, runs_for
from integrations.models import QueryRun
from profiles.models import Profile
from runs import lifecycle

from . import execution
from .access import exports_for
from .models import ExportFormat, ExportRun
from .writers import JsonWriter

CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


def _can(perm: str):
    return permission_required(perm, raise_exception=True)


def _visible(request: HttpRequest, pk: int) -> ExportRun:
    return get_object_or_404(exports_for(request.user).select_related("query_run__integration"), pk=pk)


def _show(request: HttpRequest, export: ExportRun, status: int = 200) -> HttpResponse:
    template = "exports/_export.html" if request.htmx else "exports/export_detail.html"
    return render(request, template, {"export": export}, status=status)


@require_POST
@_can("integrations.run_query")
def start(request: HttpRequest, run_id: int, number: int, fmt: str) -> HttpResponse:
    run = get_object_or_404(runs_for(request.user).select_related("integration", "profile"), pk=run_id)
    # Exporting runs the statement again: only under a profile the user may still query with.
    profile = run.profile or Profile.objects.default()
    statement = execution.exported_statement(run, number)
    if fmt not in ExportFormat.values or statement is None or \
            not profiles_for(request.user, run.integration).filter(pk=profile.pk).exists():
        raise Http404("no such result")
    with transaction.atomic():  # the export and its audit event: one commit
        export = execution.submit(run, number, fmt, request.user)
        record_event(request, "export", run.integration, run=run.pk, export=export.pk, statement=number,
                     format=fmt, profile=profile.key, sql=statement[:500])
    if request.htmx:
        return render(request, "exports/_export.html", {"export": export})
    return redirect("exports:detail", pk=export.pk)


@require_GET
@_can("integrations.view_integration")
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _show(request, lifecycle.reap_if_lost(_visible(request, pk)))


@require_POST
@_can("integrations.run_query")
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    export = lifecycle.request_cancel(_visible(request, pk), queued_message="Cancelled before it started.")
    if request.htmx:
        return _show(request, export)
    return redirect("exports:detail", pk=export.pk)


@require_GET
@_can("integrations.view_integration")
def download(request: HttpRequest, pk: int) -> HttpResponse:
    export = _visible(request, pk)
    if export.status != "succeeded":
        raise Http404("this export has no file")
    try:
        handle = open(export.file_path, "rb") if not export.expired else None
    except FileNotFoundError:
        handle = None
    if handle is None:  # 410: it was here, and is gone for good
        return _show(request, export, status=410) if not request.htmx else _show(request, export)
    filename = _filename(export.query_run, export.statement_number, export.format)
    return FileResponse(handle, as_attachment=True, filename=filename, content_type=CONTENT_TYPES[export.format])


@require_GET
@_can("integrations.view_integration")
def stored_json(request: HttpRequest, run_id: int, number: int) -> HttpResponse:
    """A result that has all its rows, as JSON from the run's record (as ``run_csv`` serves CSV)."""
    run = get_object_or_404(runs_for(request.user).select_related("integration"), pk=run_id)
    if not 1 <= number <= len(run.results) or not run.results[number - 1]["columns"]:
        raise Http404("no such result")
    result = run.results[number - 1]
    buffer = io.StringIO()
    writer = JsonWriter(buffer)
    writer.write(result["columns"], result["rows"])
    writer.close()
    response = HttpResponse(buffer.getvalue(), content_type=CONTENT_TYPES["json"])
    response["Content-Disposition"] = f'attachment; filename="{_filename(run, number, "json")}"'
    return response


def _filename(run: QueryRun, number: int, fmt: str) -> str:
    """As the console's CSV is named: ``<integration>-run-<id>[-<result>].<fmt>``, nothing else."""
    suffix = f"-{number}" if len(run.results) > 1 else ""
    return f"{slugify(run.integration.name) or 'query'}-run-{run.pk}{suffix}.{fmt}"
