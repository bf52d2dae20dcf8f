"""The benchmark's own tasks, loaded by the benchmark's worker only (``--include bench.tasks``).

Each answers with a datagram to the benchmark on loopback (the app runs with no
result backend): its sequence number, the wall-clock time it finished and, for
``bench.probe``, a few of the worker's own counters.
"""
from __future__ import annotations

import json
import socket
import time

from credtool.celery import app

_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def _reply(port: int, seq: int, data: object = None) -> None:
    finished = time.time()
    # Loopback only: the benchmark listens on 127.0.0.1.
    _sock.sendto(json.dumps({"seq": seq, "t": finished, "data": data}).encode(), ("127.0.0.1", int(port)))


@app.task(name="bench.noop", ignore_result=True)
def noop(port: int, seq: int) -> None:
    _reply(port, seq)


@app.task(name="bench.probe", ignore_result=True)
def probe(port: int, seq: int) -> None:
    """How many connections to integrations' databases this worker has opened so far."""
    try:
        from integrations.kinds import postgres

        made = postgres._pool.connections_made
    except (ImportError, AttributeError):  # the pool moved: the figure is simply not reported
        made = None
    _reply(port, seq, {"connections_made": made})
