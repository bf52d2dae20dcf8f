"""Fixtures whose resources are real processes: PostgreSQL, a Celery worker, Chromium."""
from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import psycopg
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]


# --- PostgreSQL -------------------------------------------------------------------

def _checks_passwords(url: str) -> bool:
    """Whether the server refuses a wrong password over TCP (a "trust" server cannot show
    wrong-password or rotation behaviour)."""
    role = f"credtool_probe_{os.getpid()}"
    info = psycopg.conninfo.conninfo_to_dict(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {role}")
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'right-password'")
    try:
        psycopg.connect(host=info.get("host") or "127.0.0.1", port=info.get("port") or 5432, dbname="postgres",
                        user=role, password="wrong-password", connect_timeout=5).close()
        return False
    except psycopg.OperationalError:
        return True
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A superuser URL for the databases that integrations point at: TEST_POSTGRES_URL when
    that server checks passwords, else a throwaway server (which does)."""
    url = os.environ.get("TEST_POSTGRES_URL")
    if url and _checks_passwords(url):
        yield url
        return
    if url:
        import warnings

        warnings.warn("TEST_POSTGRES_URL's server accepts any password (trust); the integrations' "
                      "target database runs on a throwaway server instead", stacklevel=1)
    from devtools import localpg

    server = localpg.start()
    yield server.url
    server.stop()


@dataclass
class TargetDatabase:
    """The database our tests point integrations at, and its superuser for setting it up."""

    host: str
    port: int
    database: str
    username: str
    password: str
    superuser_url: str

    def form_values(self, **overrides: object) -> dict[str, object]:
        values = {"host": self.host, "port": self.port, "database": self.database,
                  "username": self.username, "password": self.password, "sslmode": "prefer"}
        values.update(overrides)
        return values

    def admin(self) -> psycopg.Connection:
        """A superuser connection to the target database (autocommit)."""
        return psycopg.connect(self.superuser_url, dbname=self.database, autocommit=True)

    def set_password(self, password: str) -> None:
        with psycopg.connect(self.superuser_url, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE {self.username} PASSWORD %s".replace("%s", _quote(password)))
        self.password = password


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def fresh_database(server_url: str, name: str, owner: str) -> TargetDatabase:
    """An empty database ``name`` owned by a new login role ``owner`` with a random password."""
    info = psycopg.conninfo.conninfo_to_dict(server_url)
    password = f"{owner}-pw-" + secrets.token_hex(8)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"DROP ROLE IF EXISTS {owner}")
        conn.execute(f"CREATE ROLE {owner} LOGIN PASSWORD {_quote(password)}")
        conn.execute(f"CREATE DATABASE {name} OWNER {owner}")
    return TargetDatabase(
        host=str(info.get("host") or "127.0.0.1"), port=int(info.get("port") or 5432), database=name,
        username=owner, password=password, superuser_url=server_url,
    )


@pytest.fixture(scope="session")
def target_db(postgres_server_url: str) -> TargetDatabase:
    target = fresh_database(postgres_server_url, "credtool_target", "app_user")
    with target.admin() as conn:
        conn.execute("SET ROLE app_user")
        conn.execute(
            """
            CREATE TABLE customers (
                id serial PRIMARY KEY, name text NOT NULL, email text, balance numeric(12, 2),
                signed_up date, notes text
            );
            INSERT INTO customers (name, email, balance, signed_up, notes) VALUES
                ('Ada Lovelace', 'ada@example.com', 120.50, '2024-01-15', NULL),
                ('Grace Hopper', 'grace@example.com', 99.00, '2024-02-01', '<script>alert(1)</script>'),
                ('Alan Turing', 'alan@example.com', 0, '2024-03-10', 'tab	and "quotes"');
            """
        )
    return target


@pytest.fixture
def orders(target_db):
    """An ``orders`` table (id, item, qty) of the integration's user in the target database, four rows."""
    with target_db.admin() as conn:
        conn.execute("create table if not exists orders (id serial primary key, item text not null, qty int)")
        conn.execute("alter table orders owner to app_user")
        conn.execute("truncate orders restart identity")
        conn.execute("insert into orders (item, qty) values ('apple', 3), ('pear', 15), ('plum', 8), ('fig', 1)")


@pytest.fixture
def integration(target_db, user):
    """A PostgreSQL integration on the target database with a stored password (Alice's)."""
    from integrations.models import Integration

    return Integration.objects.create_with_default(
        name="Target", kind="postgres", created_by=user, statement_timeout_s=30,
        config={k: v for k, v in target_db.form_values().items() if k != "password"},
        secrets={"password": target_db.password})


def stored_default(integration):
    """The integration's Default configuration as stored now (``default_configuration`` is cached
    on the object, so a test that saved through the web reads it again here)."""
    from integrations.models import Configuration

    return Configuration.objects.get(integration=integration, is_default=True)


# --- MySQL (MariaDB) ---------------------------------------------------------------

@pytest.fixture(scope="session")
def mysql_server_url() -> Iterator[str]:
    """An administrator URL of the MySQL server integrations point at: TEST_MYSQL_URL (CI sets
    this machine's MariaDB), else a throwaway MariaDB of the suite's own."""
    url = os.environ.get("TEST_MYSQL_URL")
    if url:
        yield url
        return
    from devtools import localmysql

    server = localmysql.start()
    yield server.url
    server.stop()


@dataclass
class MySQLTarget:
    host: str
    port: int
    database: str
    username: str
    password: str
    admin_url: str

    def form_values(self, **overrides: object) -> dict[str, object]:
        values = {"host": self.host, "port": self.port, "database": self.database, "username": self.username,
                  "password": self.password, "ssl_mode": "preferred"}
        values.update(overrides)
        return values

    def admin(self):
        """An administrator connection (autocommit), in the target database."""
        import pymysql
        from urllib.parse import unquote, urlsplit

        url = urlsplit(self.admin_url)
        return pymysql.connect(host=url.hostname or "127.0.0.1", port=url.port or 3306,
                               user=unquote(url.username or "root"), password=unquote(url.password or ""),
                               database=self.database, autocommit=True)

    def set_password(self, password: str) -> None:
        with self.admin() as conn, conn.cursor() as cursor:
            cursor.execute(f"ALTER USER '{self.username}'@'%%' IDENTIFIED BY %s", (password,))
        self.password = password


@pytest.fixture(scope="session")
def mysql_target(mysql_server_url: str) -> MySQLTarget:
    from urllib.parse import urlsplit

    url = urlsplit(mysql_server_url)
    target = MySQLTarget(host=url.hostname or "127.0.0.1", port=url.port or 3306, database="credtool_mysql_target",
                         username="credtool_app", password="my-" + secrets.token_hex(8), admin_url=mysql_server_url)
    bootstrap = MySQLTarget(**{**target.__dict__, "database": "mysql"})
    with bootstrap.admin() as conn, conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {target.database}")
        cursor.execute(f"CREATE DATABASE {target.database}")
        cursor.execute(f"DROP USER IF EXISTS '{target.username}'@'%'")
        cursor.execute(f"CREATE USER '{target.username}'@'%%' IDENTIFIED BY %s", (target.password,))
        cursor.execute(f"GRANT ALL ON {target.database}.* TO '{target.username}'@'%'")
    with target.admin() as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE orders (id int auto_increment primary key, item varchar(40) not null, "
                       "qty int, price decimal(8, 2), ordered date, note text, raw varbinary(8))")
        cursor.execute("INSERT INTO orders (item, qty, price, ordered, note, raw) VALUES "
                       "('apple', 3, 1.50, '2024-01-02', NULL, 0x00ff), "
                       "('pear', 5, 0.75, '2024-02-03', '<script>alert(1)</script>', NULL), "
                       "('plum', 8, 2.10, '2024-03-04', 'tab\tand \"quotes\"', NULL)")
    return target


@pytest.fixture
def mysql_integration(mysql_target, user):
    from integrations.models import Integration

    return Integration.objects.create_with_default(
        name="Shop (MySQL)", kind="mysql", created_by=user, statement_timeout_s=30,
        config={k: v for k, v in mysql_target.form_values().items() if k != "password"},
        secrets={"password": mysql_target.password})


# --- The Celery worker -----------------------------------------------------------

def _test_database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{s['NAME']}"
    from urllib.parse import quote

    auth = quote(s["USER"] or "", safe="") + (":" + quote(s["PASSWORD"], safe="") if s["PASSWORD"] else "")
    return f"postgresql://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@dataclass
class Worker:
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the child must not load libraries
PR_SET_PDEATHSIG = 1


def die_with_the_suite() -> None:
    """For a child process (``preexec_fn``): SIGTERM when the test session dies, however it dies.
    A worker left behind by a killed run keeps the test database open, and the next run cannot
    drop it (every test then errors at setup)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_worker(log_path: Path, extra_env: dict[str, str] | None = None, concurrency: int = 4,
                 queues: str | None = None) -> Worker:
    env = {**os.environ, "DATABASE_URL": _test_database_url(), "CREDTOOL_LOG_LEVEL": "INFO", **(extra_env or {})}
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "credtool", "worker", "--loglevel=INFO",
         f"--concurrency={concurrency}", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "-n", f"test-{os.getpid()}-{secrets.token_hex(3)}@%h"] + (["-Q", queues] if queues else []),
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=die_with_the_suite,
    )
    worker = Worker(process, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Celery worker exited at start:\n{worker.log()[-3000:]}")
        if " ready." in worker.log():
            return worker
        time.sleep(0.1)
    stop_worker(worker)
    raise RuntimeError(f"the Celery worker was not ready within 60 s:\n{worker.log()[-3000:]}")


def stop_worker(worker: Worker) -> None:
    if worker.process.poll() is None:
        worker.process.terminate()
        try:
            worker.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()


# --- AWS Secrets Manager (moto's server mode) -------------------------------------

@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A local AWS endpoint, as steps reach it through Env.aws_endpoint_url."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                               preexec_fn=die_with_the_suite)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(url, urllib.request), timeout=30, interval=0.1, message="moto's server")
    yield url
    process.terminate()
    process.wait(timeout=10)


def _answers(url: str, request) -> bool:
    try:
        request.urlopen(url + "/moto-api/", timeout=1)
        return True
    except Exception:
        return False


AWS_ENV = {"CREDTOOL_APP_ENV_AWS_ACCESS_KEY_ID": "testing", "CREDTOOL_APP_ENV_AWS_SECRET_ACCESS_KEY": "testing-secret"}


@pytest.fixture(scope="session")
def secretsmanager(moto_server):
    import boto3

    return boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=moto_server,
                        aws_access_key_id="testing", aws_secret_access_key="testing-secret")


def shares_the_apps_server(postgres_url: str) -> bool:
    """Whether the integrations' target server is the app's own database server (then the worker must
    be told to allow it: it refuses the app's own services otherwise)."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        return False
    info = psycopg.conninfo.conninfo_to_dict(postgres_url)
    return ((info.get("host") or "127.0.0.1"), str(info.get("port") or 5432)) == (
        database.get("HOST") or "127.0.0.1", str(database.get("PORT") or 5432))


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, tmp_path_factory, moto_server,
                  postgres_server_url) -> Iterator[Worker]:
    """A real worker process on the configured broker, seeing the test database."""
    broker_dir = Path(settings.VAR_DIR) / "broker" / "queue"
    if settings.CELERY_BROKER_URL.startswith("filesystem://") and broker_dir.exists():
        shutil.rmtree(broker_dir)  # leftovers of an aborted run must not execute now
        broker_dir.mkdir(parents=True)
    else:
        from credtool.celery import app

        app.control.purge()
    worker = start_worker(tmp_path_factory.mktemp("worker") / "worker.log",
                          {"CREDTOOL_APP_ENV_GREETING": "hello from the worker",
                           "CREDTOOL_APP_ENV_DB_PASSWORD": "hunter2-very-secret",
                           "CREDTOOL_APP_ENV_AWS_ENDPOINT_URL": moto_server, **AWS_ENV,
                           "CREDTOOL_INTEGRATION_ALLOW_APP_SERVICES": str(shares_the_apps_server(postgres_server_url))})
    yield worker
    stop_worker(worker)


def wait_for(predicate, timeout: float = 30, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


def wait_for_final(model, pk: int, timeout: float = 30):
    from runs.models import FINAL_STATUSES

    def final():
        obj = model.objects.get(pk=pk)
        return obj if obj.status in FINAL_STATUSES else None

    return wait_for(final, timeout, message=f"{model.__name__} {pk} to finish")


def result(run, number: int = 1) -> dict:
    """Statement ``number``'s result of a finished query run (columns, rows, row_count, truncated, status)."""
    assert len(run.results) >= number, f"run {run.pk} has {len(run.results)} result(s): {run.error_text}"
    return run.results[number - 1]


# --- Users and the browser -------------------------------------------------------

USER_PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def seeded_profiles(request):
    """Production and Staging, as the migration seeds them: a transactional test empties every
    table when it ends, and every query runs under a profile."""
    if request.node.get_closest_marker("django_db") is None:
        return
    request.getfixturevalue("_django_db_helper")
    from profiles.models import Profile

    for key, name in (("production", "Production"), ("staging", "Staging")):
        Profile.objects.get_or_create(key=key, defaults={"name": name})


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # PBKDF2's 1,000,000 rounds cost ~0.5 s a user here; tests make hundreds of users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_user(django_user_model, username: str, role: str):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(username, f"{username}@example.com", USER_PASSWORD)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def user(django_user_model):
    """Alice, a Builder: what most tests need."""
    return make_user(django_user_model, "alice", "Builder")


@pytest.fixture
def runner(django_user_model):
    return make_user(django_user_model, "rob", "Runner")


@pytest.fixture
def logged_in_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        pytest.fail("Debian's chromium is not installed: run `make test`, which installs it")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(browser, live_server, request):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        # What the user saw when the test failed: test-artifacts/<test>.png
        artifacts = ROOT / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        page.screenshot(path=str(artifacts / f"{request.node.name}.png"), full_page=True)
    context.close()


@pytest.fixture
def logged_in_page(page, user):
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(USER_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/integrations/")
    return page
