"""Everything under var/ is this user's alone, whatever the umask the process starts with."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

from tests.conftest import ROOT


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_var_files_are_created_private_under_a_permissive_umask(tmp_path):
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL",
                                                              "DJANGO_SECRET_KEY", "CREDTOOL_ENCRYPTION_KEY")}
    env.update(CREDTOOL_VAR_DIR=str(var), DJANGO_SETTINGS_MODULE="credtool.settings")
    script = ("import os; os.umask(0)\n"
              "import django; django.setup()\n"
              "from django.core.management import call_command; call_command('migrate', verbosity=0)\n"
              "from django.db import connection; connection.cursor().execute('select 1')\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert mode(var) == 0o700
    for name in ("credtool.sqlite3", "encryption.fernet", "django-secret.key"):
        assert mode(var / name) == 0o600, name
    for wal in var.glob("credtool.sqlite3-*"):
        assert mode(wal) == 0o600, wal.name
    for sub in ("broker", "broker/queue", "broker/processed", "broker/control", "staticfiles"):
        assert mode(var / sub) == 0o700, sub


def test_an_existing_world_readable_database_is_made_private(tmp_path):
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    (var / "credtool.sqlite3").touch(mode=0o644)
    os.chmod(var / "credtool.sqlite3", 0o644)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(CREDTOOL_VAR_DIR=str(var), DJANGO_SETTINGS_MODULE="credtool.settings")
    done = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert mode(var) == 0o700 and mode(var / "credtool.sqlite3") == 0o600
