"""Load through HTTP: 1,000 queries from 20 logged-in clients, each executed exactly once, memory flat."""
from __future__ import annotations

import http.cookiejar
import os
import re
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from integrations.models import Integration, QueryRun
from tests.conftest import USER_PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]
CLIENTS, QUERIES_EACH = 20, int(os.environ.get("CREDTOOL_LOAD_QUERIES_EACH", "50"))


def rss_mb(pid: int | str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Browser:
    """A logged-in HTTP client, as htmx would talk to the server."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        page = self.opener.open(base + "/accounts/login/").read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        self.post("/accounts/login/", {"username": "alice", "password": USER_PASSWORD, "csrfmiddlewaretoken": token})
        page = self.opener.open(base + "/integrations/").read().decode()
        self.csrf = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)

    def post(self, path: str, data: dict[str, str], htmx: bool = False) -> str:
        request = urllib.request.Request(self.base + path, data=urllib.parse.urlencode(data).encode())
        if htmx:
            request.add_header("HX-Request", "true")
            request.add_header("X-CSRFToken", self.csrf)
        return self.opener.open(request, timeout=30).read().decode()

    def get(self, path: str) -> str:
        request = urllib.request.Request(self.base + path, headers={"HX-Request": "true"})
        return self.opener.open(request, timeout=30).read().decode()


def test_a_thousand_queries_from_twenty_clients_complete_exactly_once(live_server, celery_worker, user, target_db):
    with target_db.admin() as conn:
        conn.execute("DROP TABLE IF EXISTS hits; CREATE TABLE hits (marker uuid PRIMARY KEY); "
                     "ALTER TABLE hits OWNER TO app_user")
    integration = Integration.objects.create_with_default(
        name="Load", kind="postgres", created_by=user,
        config={k: v for k, v in target_db.form_values().items() if k != "password"},
        secrets={"password": target_db.password})
    worker_rss: list[float] = []
    failures: list[str] = []

    def client_loop() -> None:
        try:
            browser = Browser(live_server.url)
            for _ in range(QUERIES_EACH):
                html = browser.post(f"/integrations/{integration.pk}/query/",
                                    {"sql": f"insert into hits values ('{uuid.uuid4()}') returning marker"}, htmx=True)
                run_id = re.search(r"/runs/(\d+)/", html).group(1)
                deadline = time.monotonic() + 60
                while 'data-status="succeeded"' not in html and time.monotonic() < deadline:
                    if 'data-status="failed"' in html:
                        failures.append(html[:300])
                        break
                    time.sleep(0.2)
                    html = browser.get(f"/integrations/{integration.pk}/runs/{run_id}/")
        except Exception as exc:  # reported below, with the others
            failures.append(repr(exc))

    def sample_memory() -> None:
        while any(t.is_alive() for t in clients):
            worker_rss.append(rss_mb(celery_worker.process.pid))
            time.sleep(0.5)

    clients = [threading.Thread(target=client_loop) for _ in range(CLIENTS)]
    web_before = rss_mb("self")
    for thread in clients:
        thread.start()
    sampler = threading.Thread(target=sample_memory)
    sampler.start()
    for thread in clients:
        thread.join(timeout=600)
    sampler.join()
    assert not failures, failures[:3]
    assert QueryRun.objects.filter(integration=integration).count() == CLIENTS * QUERIES_EACH
    assert QueryRun.objects.filter(integration=integration, status="succeeded").count() == CLIENTS * QUERIES_EACH
    with target_db.admin() as conn:
        assert conn.execute("select count(*) from hits").fetchone()[0] == CLIENTS * QUERIES_EACH
    # Flat: after the first tenth, memory grows by no more than a little.
    settled = worker_rss[len(worker_rss) // 10:] or worker_rss
    assert max(settled) - settled[0] < 40, (settled[0], max(settled))
    assert rss_mb("self") - web_before < 80
