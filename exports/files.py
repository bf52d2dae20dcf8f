"""Where export files live (``VAR_DIR/exports``, 0700, each file 0600) and how they go away.

Names are the export's id and a random part: never a query's text, an
integration's name or anything from its credentials.
"""
from __future__ import annotations

import logging
import os
import secrets
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from credtool.settings import private_dir
from runs.models import RunStatus

from .models import ExportRun

log = logging.getLogger(__name__)

KEEP = timedelta(days=1)  # a file, from when its export finished
# The row (what its link says: "expired") a week longer; then it goes too.
KEEP_ROWS = timedelta(days=8)


def directory() -> Path:
    return private_dir(Path(settings.VAR_DIR) / "exports")


def create(export_id: int, fmt: str) -> tuple[Path, int]:
    """A new, empty, private file for an export, and its open descriptor (for writing)."""
    path = directory() / f"export-{export_id}-{secrets.token_hex(6)}.{fmt}"
    return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)


def remove(path: str | Path) -> None:
    if path:
        Path(path).unlink(missing_ok=True)


def purge() -> int:
    """Delete the files of expired exports (their rows then say "expired"), the rows a week after,
    and files no row knows (a worker killed while writing) once a day old; how many files went."""
    now = timezone.now()
    removed = 0
    expired = (ExportRun.objects.filter(expires_at__lte=now).exclude(file_path="")
               .exclude(status__in=(RunStatus.QUEUED, RunStatus.RUNNING)))
    for pk, path in expired.values_list("pk", "file_path"):
        remove(path)
        ExportRun.objects.filter(pk=pk).update(file_path="")
        removed += 1
    ExportRun.objects.filter(expires_at__lte=now - (KEEP_ROWS - KEEP)).exclude(
        status__in=(RunStatus.QUEUED, RunStatus.RUNNING)).delete()
    folder = directory()
    known = set(ExportRun.objects.exclude(file_path="").values_list("file_path", flat=True))
    cutoff = time.time() - KEEP.total_seconds()
    for path in folder.glob("export-*"):
        try:
            if str(path) not in known and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        except OSError:
            continue
    if removed:
        log.info("deleted %s expired export file(s)", removed)
    return removed
