"""The benchmark's web server: ``python -m bench.web PORT``, threaded, on 127.0.0.1 only.

``BENCH_WEB_SERVER`` picks it: ``gunicorn`` (what ``make run`` serves through, as it does: 2 worker
processes of 16 threads), ``django`` (Django's own threaded server, what ``make dev`` uses, without the
autoreloader) or ``granian`` (2 workers, WSGI, blocking threads; installed by hand), serving the
app unchanged (bench/wsgi.py). The one difference
from ``make run``: queries go to the benchmark's queue, so a broker shared with a developer's
app keeps the two apart.
"""
from __future__ import annotations

import os
import sys


# make run's defaults (the Makefile's CREDTOOL_WEB_WORKERS and CREDTOOL_WEB_THREADS): 14 Runs per
# process may wait for their query in the request, 28 in all, for the throughput cases' 16 clients.
WORKERS, THREADS = 2, 16


def main() -> None:
    port = int(sys.argv[1])
    server = os.environ.get("BENCH_WEB_SERVER", "gunicorn")
    os.environ["CREDTOOL_WEB_THREADS"] = str(THREADS)  # what the app sizes its waiting slots by
    if server == "gunicorn":
        from gunicorn.app.wsgiapp import run as gunicorn

        sys.argv = ["gunicorn", "bench.wsgi:application", "--bind", f"127.0.0.1:{port}",
                    "--workers", str(WORKERS), "--threads", str(THREADS), "--log-level", "warning"]
        gunicorn()
        return
    if server == "granian":
        from granian import Granian

        Granian("bench.wsgi:application", address="127.0.0.1", port=port, interface="wsgi", workers=WORKERS,
                blocking_threads=THREADS, log_level="warning").serve()
        return
    import django

    django.setup()
    from django.core.servers.basehttp import get_internal_wsgi_application, run

    from bench.services import QUEUE
    from credtool.celery import app

    app.conf.task_default_queue = QUEUE
    run("127.0.0.1", port, get_internal_wsgi_application(), threading=True)


if __name__ == "__main__":
    main()
