"""The benchmark's web server: ``python -m bench.web PORT``, threaded, on 127.0.0.1 only.

Django's own threaded WSGI server (what ``runserver`` uses, without the autoreloader),
serving the app unchanged. The one difference from ``make run``: queries go to the
benchmark's queue, so a broker shared with a developer's app keeps the two apart.
"""
from __future__ import annotations

import sys


def main() -> None:
    port = int(sys.argv[1])
    import django

    django.setup()
    from django.core.servers.basehttp import get_internal_wsgi_application, run

    from bench.services import QUEUE
    from credtool.celery import app

    app.conf.task_default_queue = QUEUE
    run("127.0.0.1", port, get_internal_wsgi_application(), threading=True)


if __name__ == "__main__":
    main()
