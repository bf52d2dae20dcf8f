"""The benchmark's atomic publish for kombu's filesystem broker: every message arrives whole."""
from __future__ import annotations

import threading

from kombu import Connection

from bench import fsbroker


def test_concurrent_publishers_and_a_consumer_lose_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr("kombu.transport.filesystem.Channel._put", _original_put())
    fsbroker.apply()
    options = {"data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path), "store_processed": False}
    received: list[dict] = []
    done = threading.Event()

    def consume() -> None:
        with Connection("filesystem://", transport_options=options) as conn:
            channel = conn.channel()
            while not (done.is_set() and not any(tmp_path.iterdir())):
                try:
                    received.append(channel._get("work"))
                except Exception as exc:  # Empty, or a torn message (the bug worked around)
                    assert type(exc).__name__ == "Empty", exc

    def publish(worker: int) -> None:
        with Connection("filesystem://", transport_options=options) as conn:
            channel = conn.channel()
            for i in range(40):
                channel._put("work", {"worker": worker, "i": i, "body": "x" * 500})

    consumer = threading.Thread(target=consume)
    consumer.start()
    publishers = [threading.Thread(target=publish, args=(w,)) for w in range(8)]
    for t in publishers:
        t.start()
    for t in publishers:
        t.join()
    done.set()
    consumer.join(timeout=30)
    assert sorted((m["worker"], m["i"]) for m in received) == [(w, i) for w in range(8) for i in range(40)]


def _original_put():
    from kombu.transport import filesystem

    return filesystem.Channel._put


def test_only_the_filesystem_broker_gets_the_workaround(monkeypatch):
    monkeypatch.delenv("BENCH_FS_ATOMIC_PUT", raising=False)
    assert fsbroker.enabled("filesystem://")
    assert not fsbroker.enabled("redis://127.0.0.1:6379/0")
    monkeypatch.setenv("BENCH_FS_ATOMIC_PUT", "0")
    assert not fsbroker.enabled("filesystem://")
