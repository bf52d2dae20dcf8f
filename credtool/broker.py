"""The embedded broker: kombu's filesystem transport, with messages written atomically.

kombu writes a message file in place, so a consumer can pick the file up
between its creation and its contents (an empty read, a JSONDecodeError, and
the consumer drops its connection). Under 20 concurrent web threads that lost
most messages. Writing to a temporary name and renaming makes a message appear
whole or not at all; the rename stays in the same folder, so it is atomic.
"""
from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.part")  # not "*.msg": consumers skip it
        try:
            with open(partial, "wb", buffering=0) as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.rename(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
