"""Broker transports: kombu's, with two faults of theirs fixed.

The embedded broker is kombu's filesystem transport with messages written
atomically. kombu writes a message file in place, so a consumer can pick the
file up between its creation and its contents (an empty read, a
JSONDecodeError, and the consumer drops its connection). Under 20 concurrent
web threads that lost most messages. Writing to a temporary name and renaming
makes a message appear whole or not at all; the rename stays in the same
folder, so it is atomic. Files are created 0600: nobody else reads run ids.

Redis: when the connection to Redis breaks while the worker holds unacknowledged
messages (a Redis restart), kombu 5.7 closes the channel after its connection
has let go of the client, then tries to put those messages back through that
client: ``AttributeError: 'NoneType' object has no attribute 'hostname'``, which
Celery treats as unrecoverable, and the worker process exits. Measured: one
restart in two under load killed the worker (see
tests/integrations/test_faults.py). With the connection gone there is nothing
to put them back on, and nothing needs to be: the runs are still "queued" in
credtool's own rows and are sent again (runs.lifecycle.resend_lost_runs).
"""
from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.transport import filesystem, redis
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.part")  # not "*.msg": consumers skip it
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with open(fd, "wb", buffering=0) as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.rename(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


class RedisQoS(redis.QoS):
    def _connection_gone(self) -> bool:
        return self.channel.connection is None or self.channel.connection.client is None

    def restore_unacked(self, client=None):
        if client is None and self._connection_gone():
            self._delivered.clear()  # see the module's docstring
            return
        super().restore_unacked(client)

    def ack(self, delivery_tag):
        if self._connection_gone():
            self._delivered.pop(delivery_tag, None)
            return
        super().ack(delivery_tag)


class RedisChannel(redis.Channel):
    QoS = RedisQoS


class RedisTransport(redis.Transport):
    Channel = RedisChannel
