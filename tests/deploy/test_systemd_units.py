"""deploy/'s systemd units, started for real: each unit's commands as systemd would run them
(its EnvironmentFile, its ${VARIABLES}, %i and %H), as processes (no systemd or container engine
here). Production settings (CREDTOOL_DEBUG=false): the web answers its probes over plain HTTP, the
rest only over HTTPS behind a proxy, static files come from collectstatic through whitenoise, and a
workflow run through the API is done by the worker unit."""
from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.conftest import die_with_the_suite

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
INSTALLED_PYTHON = "/opt/credtool/.venv/bin/python"


def service(unit: str) -> dict[str, list[str]]:
    """The [Service] section's settings, each key's values in order (ExecStartPre may repeat)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for line in (DEPLOY / unit).read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def environment_file() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / "credtool.env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def command(line: str, env: dict[str, str], instance: str = "") -> list[str]:
    """An Exec line as systemd runs it: ${VAR} from the environment, %i and %H, then words."""
    line = line.replace("%i", instance).replace("%H", socket.gethostname())
    line = re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], line)
    words = shlex.split(line)
    return [sys.executable if words[0] == INSTALLED_PYTHON else words[0], *words[1:]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture
def deployment(tmp_path):
    """The units' environment: deploy/credtool.env with this machine's stand-ins (a SQLite database
    and the filesystem broker under a private folder, fresh keys, a free port)."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("CREDTOOL_", "DJANGO_", "DATABASE_URL", "CELERY_"))}
    env.update(environment_file())
    env.update({
        "CREDTOOL_VAR_DIR": str(tmp_path / "var"), "DATABASE_URL": f"sqlite:///{tmp_path / 'credtool.sqlite3'}",
        "CELERY_BROKER_URL": "filesystem://", "CREDTOOL_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://127.0.0.1", "PORT": str(free_port()), "HOST": "127.0.0.1",
        "CREDTOOL_WEB_WORKERS": "2", "CREDTOOL_WEB_THREADS": "4",
    })
    processes: list[subprocess.Popen] = []
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(unit: str, instance: str = "") -> subprocess.Popen:
        settings = service(unit)
        unit_env = dict(env)
        for assignment in settings.get("Environment", []):
            key, _, value = assignment.partition("=")
            unit_env[key] = value.replace("%i", instance)
        for line in settings.get("ExecStartPre", []):
            subprocess.run(command(line, unit_env, instance), cwd=ROOT, env=unit_env, check=True,
                           capture_output=True, timeout=300)
        log = open(logs / f"{unit}{instance}.log", "wb")
        process = subprocess.Popen(command(settings["ExecStart"][0], unit_env, instance), cwd=ROOT, env=unit_env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   preexec_fn=die_with_the_suite)
        processes.append(process)
        return process

    yield env, start, logs
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)


def test_the_units_start_and_serve_a_workflow_run(deployment):
    env, start, logs = deployment
    web = start("credtool-web.service")
    worker = start("credtool-worker.service")
    beat = start("credtool-beat.service")
    url = f"http://127.0.0.1:{env['PORT']}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if get(url + "/healthz")[0] == 200:
                break
        except OSError:
            time.sleep(0.2)
    else:
        pytest.fail("the web unit never answered /healthz:\n" + (logs / "credtool-web.service.log").read_text()[-3000:])

    # Probes over plain HTTP; a page over plain HTTP goes to HTTPS (the proxy's job).
    status, body = get(url + "/readyz")
    assert status == 200 and json.loads(body)["status"] == "ready", body
    opener = urllib.request.build_opener(_NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirected:
        opener.open(url + "/accounts/login/", timeout=10)
    assert redirected.value.code == 301 and redirected.value.headers["Location"].startswith("https://")
    https = {"X-Forwarded-Proto": "https"}
    assert get(url + "/accounts/login/", https)[0] == 200
    status, script = get(url + "/static/vendor/credtool-console.js", https)
    assert status == 200 and len(script) > 100_000  # collected by ExecStartPre, served by whitenoise

    # The worker unit runs what the web unit queues.
    shell = ("from django.contrib.auth import get_user_model; from api import tokens; "
             "from workflows.models import Step, Workflow; "
             "u = get_user_model().objects.create_superuser('ops', 'ops@example.com', 'x' * 16); "
             "w = Workflow.objects.create(name='answer'); "
             "Step.objects.create(workflow=w, position=0, name='one', code='return 6 * 7'); "
             "print(tokens.create(u, 'deploy').secret)")
    token = subprocess.run([sys.executable, "manage.py", "shell", "-c", shell], cwd=ROOT, env=env, check=True,
                           capture_output=True, text=True, timeout=120).stdout.strip().splitlines()[-1]
    status, body = get(url + "/api/v1/workflows/answer/run", {**https, "Authorization": f"Bearer {token}",
                                                              "Content-Type": "application/json"}, b"{}")
    answer = json.loads(body)
    assert status == 200 and answer["status"] == "done" and answer["output"] == 42, answer
    assert web.poll() is None and worker.poll() is None and beat.poll() is None, "every unit keeps running"
