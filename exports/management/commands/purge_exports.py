from __future__ import annotations

from django.core.management.base import BaseCommand

from exports import files


class Command(BaseCommand):
    help = "Delete export files older than a day (and export rows a week after that)."

    def handle(self, *args: object, **options: object) -> None:
        removed = files.purge()
        self.stdout.write(f"Deleted {removed} expired export file{'s' if removed != 1 else ''}.")
