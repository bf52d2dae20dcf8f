"""credtool's benchmark (issue 5): ``make bench``, i.e. ``python -m bench``.

Starts PostgreSQL (``TEST_POSTGRES_URL``, else a throwaway server), moto's server,
a Celery worker on ``CELERY_BROKER_URL`` (else the embedded filesystem broker) and
a web server, all on 127.0.0.1 and all stopped at the end (also on Ctrl+C); runs
the cases; prints a table and writes ``var/bench/results.json`` (``make bench PUBLISH=1``:
``bench/results.json``, the committed record). The app's data lives in ``var/bench/``
(recreated on every run), never in a developer's ``var/``.

Knobs (environment):
  BENCH_SCALE=1          multiplies every iteration count (0.2 for a quick look)
  BENCH_THROUGHPUT_S=10  measured seconds of each throughput case (after a 3 s warm-up)
  BENCH_CLIENTS=16       concurrent clients in the throughput cases
  BENCH_GROUPS=...       a subset of: queries, kinds, steps, pacing, large, queued
  BENCH_APP_DB=sqlite    or ``postgres``: the app's own database on the PostgreSQL server
  BENCH_POLL_MS=2        how often finished runs are looked for (never part of a latency)
  BENCH_OUTPUT, BENCH_VAR_DIR, BENCH_DEBUG=false

Modules: run.py (the cases, in order), services.py (the processes), queued.py (the
broker and HTTP cases), large_result.py (in a fresh process each), sandbox_study.py
(pacing and pool size), stats.py (pure), report.py (the table), chart.py (the README's
docs/bench.png, drawn when publishing), tasks.py and web.py
(loaded by the benchmark's worker and web server).
"""
