"""The benchmark's web server: ``python -m bench.web PORT``, threaded, on 127.0.0.1 only.

``BENCH_WEB_SERVER`` picks it: ``gunicorn`` (what ``make run`` serves through; one worker with
threads), ``django`` (Django's own threaded server, what ``make dev`` uses, without the
autoreloader) or ``granian`` (one worker, WSGI, blocking threads; installed by hand), serving the
app unchanged (bench/wsgi.py). The one difference
from ``make run``: queries go to the benchmark's queue, so a broker shared with a developer's
app keeps the two apart.
"""
from __future__ import annotations

import os
import sys


# The throughput cases' 16 clients, plus the two threads a process keeps from waiting Runs: every
# client's Run can wait for its query in the request, as make run's 2 workers × 16 threads allow 28.
THREADS = 18


def main() -> None:
    port = int(sys.argv[1])
    server = os.environ.get("BENCH_WEB_SERVER", "gunicorn")
    os.environ["CREDTOOL_WEB_THREADS"] = str(THREADS)  # what the app sizes its waiting slots by
    if server == "gunicorn":
        from gunicorn.app.wsgiapp import run as gunicorn

        sys.argv = ["gunicorn", "bench.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                    "--threads", str(THREADS), "--log-level", "warning"]
        gunicorn()
        return
    if server == "granian":
        from granian import Granian

        Granian("bench.wsgi:application", address="127.0.0.1", port=port, interface="wsgi", workers=1,
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
