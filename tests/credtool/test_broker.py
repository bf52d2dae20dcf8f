"""The broker transports credtool ships (credtool/broker.py), against a real redis-server and folder."""
from __future__ import annotations

import os
import shutil
import stat

import pytest
from kombu import Connection

from tests.integrations.test_faults import PrivateRedis


@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server")
@pytest.mark.parametrize("transport, survives", [(None, False), ("credtool.broker:RedisTransport", True)])
def test_closing_a_channel_that_holds_messages_after_redis_restarted(transport, survives):
    """What Celery's consumer does after a Redis restart: its collect() is cut short by the broken
    socket (the transport has let go of its client), then it closes the connection, whose channel
    still holds an unacknowledged message. kombu's own transport raises, and Celery exits."""
    redis = PrivateRedis()
    try:
        with Connection(redis.url) as producer:
            queue = producer.SimpleQueue("q")
            queue.put({"run": 1})
            queue.close()
        connection = Connection(redis.url, transport=transport)
        channel = connection.default_channel
        assert channel.basic_get("q", no_ack=False) is not None
        redis.restart()
        connection.transport.client = None
        if survives:
            connection.release()
        else:
            with pytest.raises(AttributeError, match="hostname"):
                connection.release()
    finally:
        redis.stop()


def test_the_embedded_broker_writes_messages_only_its_user_can_read(tmp_path):
    folder = tmp_path / "queue"
    folder.mkdir()
    old = os.umask(0)
    try:
        with Connection("filesystem://", transport="credtool.broker:Transport", transport_options={
                "data_folder_in": str(folder), "data_folder_out": str(folder),
                "control_folder": str(tmp_path / "control")}) as connection:
            queue = connection.SimpleQueue("q")
            queue.put({"run": 1})
            queue.close()
    finally:
        os.umask(old)
    [message] = list(folder.iterdir())
    assert stat.S_IMODE(message.stat().st_mode) == 0o600
