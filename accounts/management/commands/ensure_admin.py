"""Make sure someone can log in to a fresh install.

With no users at all, creates an administrator: from Django's standard
DJANGO_SUPERUSER_USERNAME / _PASSWORD / _EMAIL when set, else "admin" with a
generated password printed once (and written to var/admin-password, mode 0600).
"""
from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a first administrator when the database has no users."

    def handle(self, *args: object, **options: object) -> None:
        User = get_user_model()
        if User.objects.exists():
            return
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "admin")
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        generated = password is None
        if generated:
            password = secrets.token_urlsafe(12)
            path = settings.VAR_DIR / "admin-password"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(password + "\n")
        User.objects.create_superuser(username, email, password)
        if generated:
            self.stdout.write(self.style.SUCCESS(
                f"Created the administrator “{username}” with password: {password}\n"
                f"(also in {settings.VAR_DIR / 'admin-password'}; change it after logging in)"
            ))
        else:
            self.stdout.write(self.style.SUCCESS(f"Created the administrator “{username}”."))
