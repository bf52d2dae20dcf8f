# credtool: `make run` starts the app and its worker; `make test` runs the whole suite.
# Both set up everything they need on a machine that has only Python.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
HOST ?= 127.0.0.1
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run dev test demo bench assets worker web migrate system-packages browser-packages mysql-packages clean help

help:
	@echo "make run    - the app on http://$(HOST):$(PORT)/ (gunicorn), its Celery worker and beat (embedded defaults)"
	@echo "make dev    - the same with Django's autoreloading server, for development"
	@echo "make test   - the whole test suite (installs what it needs)"
	@echo "make demo   - the fetched-credentials flow, seeded, on http://127.0.0.1:$(PORT)/"
	@echo "make bench  - the benchmark: a table and var/bench/results.json (PUBLISH=1: bench/results.json, the committed record, and docs/bench.png)"
	@echo "make assets - rebuild static/vendor/credtool-console.js from assets/ (needs Node.js; the result is committed)"

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# bubblewrap isolates workflow steps; without it steps still run, with a warning.
system-packages:
	@command -v bwrap >/dev/null || { echo "Installing bubblewrap (sandbox for workflow steps)"; \
	  ($(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap) \
	  || echo "WARNING: could not install bubblewrap; workflow steps will run with weaker isolation"; }
	@# As root, steps drop to this unprivileged user; created once, owns nothing.
	@[ "$$(id -u)" != 0 ] || id credtool-sandbox >/dev/null 2>&1 || \
	  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin credtool-sandbox

browser-packages:
	@command -v chromium >/dev/null || { echo "Installing Debian's chromium for the browser tests"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# Without TEST_MYSQL_URL the suite starts a throwaway MariaDB from Debian's binaries.
mysql-packages:
	@[ -n "$$TEST_MYSQL_URL" ] || command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || \
	  { echo "Installing Debian's mariadb-server for the MySQL tests"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server; }

# The editor, grid and charts: npm packages pinned in assets/package-lock.json, bundled by esbuild
# into one committed file, so that make run never needs Node.js.
assets:
	cd assets && npm ci --no-audit --no-fund && npm run build

migrate: $(VENV)/.runtime
	$(PY) manage.py migrate --noinput
	$(PY) manage.py ensure_admin

# The web server (gunicorn: CREDTOOL_WEB_WORKERS processes of CREDTOOL_WEB_THREADS threads; static
# files by whitenoise), a real Celery worker and beat (workflows' Schedules, read from the database:
# no schedule file to keep); Ctrl+C stops all three. make dev: Django's autoreloading server instead.
WEB_SERVER = $(PY) -m gunicorn credtool.wsgi:application --bind $(HOST):$(PORT) \
	--workers $${CREDTOOL_WEB_WORKERS:-2} --threads $${CREDTOOL_WEB_THREADS:-16} --access-logfile - --no-control-socket
run: $(VENV)/.runtime system-packages migrate
	@trap 'kill 0' EXIT; \
	$(PY) -m celery -A credtool worker --loglevel=INFO & \
	$(PY) -m celery -A credtool beat --loglevel=INFO --scheduler django_celery_beat.schedulers:DatabaseScheduler & \
	$(WEB_SERVER)

dev: $(VENV)/.runtime system-packages migrate
	@trap 'kill 0' EXIT; \
	$(PY) -m celery -A credtool worker --loglevel=INFO & \
	$(PY) -m celery -A credtool beat --loglevel=INFO --scheduler django_celery_beat.schedulers:DatabaseScheduler & \
	$(PY) manage.py runserver $(HOST):$(PORT)

# The fetched-credentials flow, seeded: local Secrets Manager (moto), a throwaway PostgreSQL, app and worker.
demo: $(VENV)/.dev system-packages
	PORT=$(PORT) $(PY) -m devtools.demo

# Side-by-side figures (p50/p95) printed as a table and written to var/bench/results.json; with
# PUBLISH=1 to bench/results.json, the committed record of the last published run, and its chart
# docs/bench.png (python -m bench.chart redraws it from the file).
bench: $(VENV)/.dev system-packages
	$(if $(PUBLISH),BENCH_OUTPUT=bench/results.json) $(PY) -m bench

test: $(VENV)/.dev system-packages browser-packages mysql-packages
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
