"""credtool settings: everything comes from the environment, with embedded defaults.

With no environment at all, credtool runs on SQLite and a filesystem broker under
``var/`` so that ``make run`` works on a machine that has only Python. Every helper
below fails loudly on a value it cannot parse: a typo in a deployment should stop
the process, not silently fall back to a default.
"""
from __future__ import annotations

import ipaddress
import os
import re
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def private_dir(path: Path) -> Path:
    """A directory only this user can enter, whatever the umask: var/ holds the database, keys,
    sessions, stored results and the embedded broker's messages."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def private_file(path: Path) -> Path:
    """``path`` created (empty) or kept, readable by this user only, whatever the umask."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)
    return path


VAR_DIR = private_dir(Path(os.environ.get("CREDTOOL_VAR_DIR", BASE_DIR / "var")))


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum {minimum}")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true or false)")


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def local_secret(filename: str) -> str:
    """A development secret generated once into an ignored file under var/.

    Production sets the environment variable instead; the file only saves a
    developer from inventing keys by hand.
    """
    path = VAR_DIR / filename
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            if filename.endswith(".fernet"):
                from cryptography.fernet import Fernet

                handle.write(Fernet.generate_key().decode())
            else:
                handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


DEBUG = env_bool("CREDTOOL_DEBUG", True)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or local_secret("django-secret.key")
# Comma-separated Fernet keys; the first encrypts, all decrypt (so keys can rotate).
ENCRYPTION_KEYS = env_list("CREDTOOL_ENCRYPTION_KEY", []) or [local_secret("encryption.fernet")]
# A Redis URL shared by every worker host: fetched credentials are then cached there (encrypted
# with the key above) and fetched once across hosts; empty: each worker process keeps its own.
CREDENTIAL_CACHE_URL = env_str("CREDTOOL_CREDENTIAL_CACHE", "")
if CREDENTIAL_CACHE_URL and not CREDENTIAL_CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
    # Not echoed: the URL may hold Redis's password.
    raise ImproperlyConfigured("CREDTOOL_CREDENTIAL_CACHE is not a redis://, rediss:// or unix:// URL")

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.forms",
    "django_htmx",
    # Schedules: beat reads workflows' PeriodicTasks from the database (workflows.schedules).
    # Before workflows, whose admin.py unregisters its admin pages.
    "django_celery_beat",
    "profiles",
    "runs",
    "audit",
    "workflows",
    "integrations",
    "exports",
    "api",
    # Last: its post_migrate handler gives the roles the permissions of the apps above.
    "accounts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before CSRF's check: an expired session's htmx POST goes to the login page, not a 403.
    "accounts.htmx_login.HtmxLoginRedirectMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "credtool.security.SecurityHeadersMiddleware",
]

ROOT_URLCONF = "credtool.urls"
FORM_RENDERER = "credtool.form_renderer.FormRenderer"
WSGI_APPLICATION = "credtool.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            # Filters every app's pages use: one library, loaded as {% load display %}.
            "libraries": {"display": "credtool.display"},
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL")
        # SQLite gives its -wal and -shm files the database file's mode: 0600 for all three.
        or f"sqlite:///{private_file(VAR_DIR / 'credtool.sqlite3')}",
        conn_max_age=60,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The worker writes run records while the web process reads them: WAL lets
    # readers and one writer work together, IMMEDIATE avoids mid-transaction
    # lock upgrades that fail with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory: the worker process in the end-to-end tests must see it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-credtool.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ModelBackend with one statement for a user's permissions instead of two ORM queries (see the module).
AUTHENTICATION_BACKENDS = ["accounts.permissions.PermissionBackend"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# --- Web hardening (SecurityMiddleware and friends) ---------------------------------
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx sends the token from the page, not the cookie
SESSION_COOKIE_SAMESITE = "Lax"
if not DEBUG:
    # Production: HTTPS only (a proxy in front terminates TLS and sets X-Forwarded-Proto).
    SECURE_SSL_REDIRECT = env_bool("CREDTOOL_SSL_REDIRECT", True)
    # Probes talk to the process itself, over plain HTTP: a redirect would read as "down".
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("CREDTOOL_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("CREDTOOL_HSTS_PRELOAD", True)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "integrations:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TZ", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
private_dir(STATIC_ROOT)  # whitenoise warns on every request without it

MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
# Sessions read from memory, written through to the database: one query less per request.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("CREDTOOL_LOG_LEVEL", "INFO")},
    "loggers": {
        # Request logs never carry bodies, but psycopg's own debug logs can carry conninfo, and
        # httpx's INFO lines carry URLs, whose query strings may hold an API key.
        "psycopg": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

# --- Queries -------------------------------------------------------------------
QUERY_MAX_ROWS = env_int("CREDTOOL_QUERY_MAX_ROWS", 1000, minimum=1)
QUERY_CONNECT_TIMEOUT_S = env_int("CREDTOOL_CONNECT_TIMEOUT", 5, minimum=1)
QUERY_RECENT_RUNS = 20
# Download CSV/JSON re-runs a result's statement into a file, up to this many rows (taken when the
# export is asked for, and kept on it); the file is deleted a day later.
EXPORT_MAX_ROWS = env_int("CREDTOOL_EXPORT_MAX_ROWS", 1_000_000, minimum=1)
# Optional allow-list of networks (CIDRs) integrations may connect to, e.g. "10.20.0.0/16".
# Metadata addresses and the app's own database and broker are refused regardless.
INTEGRATION_NETWORKS = env_list("CREDTOOL_INTEGRATION_NETWORKS", [])
# For a test bench where users' databases live on the app's own server; never in production.
INTEGRATION_ALLOW_APP_SERVICES = env_bool("CREDTOOL_INTEGRATION_ALLOW_APP_SERVICES", False)
for _network in INTEGRATION_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"CREDTOOL_INTEGRATION_NETWORKS: {_network!r} is not a network (CIDR)") from None
# How long a running query's worker may go without renewing its lease before the
# run is failed as "worker lost" (it renews every third of this).
RUN_LEASE_S = env_int("CREDTOOL_RUN_LEASE_S", 30, minimum=3)
# A queued run not picked up within this long is sent to the broker again (its
# message may have been lost); duplicates are harmless, a run is claimed once.
RUN_RESEND_AFTER_S = env_int("CREDTOOL_RUN_RESEND_AFTER_S", 60, minimum=2)

# --- The HTTP API (/api/v1/) ----------------------------------------------------------
# Runs (workflow runs and queries) one API token may start in any 60 seconds; more are answered 429.
API_RATE_LIMIT = env_int("CREDTOOL_API_RATE_LIMIT", 60, minimum=1)
# How long a request that starts a run waits for it before answering 202 (?wait= chooses, up to the maximum).
API_DEFAULT_WAIT_S = 30
API_MAX_WAIT_S = 300

# --- The console ------------------------------------------------------------------------
# Run waits this long for the query in its own request (most answer within it: no page polls);
# a longer one answers "Running" and the page polls. At most WEB_WAITING_SLOTS requests of a
# web process wait at once, so waiting never takes every thread: make run's gunicorn has
# CREDTOOL_WEB_THREADS per process (the same default as the Makefile's).
CONSOLE_WAIT_S = 1.0
WEB_WAITING_SLOTS = max(1, env_int("CREDTOOL_WEB_THREADS", 16, minimum=1) - 2)

# --- Celery --------------------------------------------------------------------
# The run's state is our own database row; the broker only delivers ids.
_default_broker_dir = VAR_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
    # Unacknowledged tasks come back after this long on Redis; queries are bounded
    # by their statement timeout far below it, so a redelivery means a lost worker.
    "visibility_timeout": 3600,
}
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT = "credtool.broker:RedisTransport"  # survives a Redis restart; see credtool/broker.py
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT = "credtool.broker:Transport"  # atomic writes; see credtool/broker.py
    for sub in ("", "queue", "processed", "control"):
        private_dir(_default_broker_dir / sub)
    CELERY_BROKER_TRANSPORT_OPTIONS.update(
        data_folder_in=str(_default_broker_dir / "queue"),
        data_folder_out=str(_default_broker_dir / "queue"),
        processed_folder=str(_default_broker_dir / "processed"),
        control_folder=str(_default_broker_dir / "control"),
        store_processed=False,
        # Measured: 0.05 s made a no-op task take ~47 ms, 0.01 s ~10 ms, for ~1% idle CPU.
        polling_interval=0.01,
    )
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
# Messages are acknowledged when a worker thread takes them. Late acks would only
# make the broker redeliver a lost worker's runs, which credtool never needs: a
# claimed run's lost worker is reaped from its lease, and a run not yet claimed is
# still "queued" in its row and is sent again (runs.lifecycle). Late acks did cost
# something: unacknowledged messages at a Redis restart crashed the worker (see
# credtool/broker.py).
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Threads, not forked processes: each task waits on a database or a sandboxed
# step, and one process means one in-memory credential cache per worker host.
CELERY_WORKER_POOL = env_str("CREDTOOL_WORKER_POOL", "threads")
CELERY_WORKER_CONCURRENCY = env_int("CREDTOOL_WORKER_CONCURRENCY", 8, minimum=1)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's Django fixup closes the database connection around every task unless told
# otherwise: 0.5 ms per query on SQLite, 5.7 ms on PostgreSQL. Connections are kept
# and checked by close_old_connections (CONN_MAX_AGE, health checks) as for requests.
CELERY_DB_REUSE_MAX = 1_000_000
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Schedules are read in the server's time zone, and beat reads them from the database.
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Entries beat's DatabaseScheduler writes into its table when it starts (beside workflows' Schedules).
CELERY_BEAT_SCHEDULE = {
    # Expired export files go every hour; a worker starting an export sweeps them as well.
    "delete-expired-exports": {"task": "exports.purge_exports", "schedule": 3600.0},
}
# The profiles whose runs a worker executes: keys, comma-separated (e.g. "staging" for a worker in
# the staging network holding staging's keys only); empty: every profile, including profiles
# created while it runs. One broker queue per profile; see runs/workers.py.
WORKER_PROFILES = env_list("CREDTOOL_WORKER_PROFILES", [])
for _key in WORKER_PROFILES:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,29}", _key):  # profiles.models.KEY_PATTERN
        raise ImproperlyConfigured(f"CREDTOOL_WORKER_PROFILES: {_key!r} is not a profile key "
                                   "(lower-case letters, digits and _, starting with a letter)")
