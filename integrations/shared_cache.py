"""The Redis side of the shared credential cache (``CREDTOOL_CREDENTIAL_CACHE``).

Entries are Fernet tokens (credtool.crypto, the key that encrypts stored
secrets): Redis, its persistence files and anyone watching it with MONITOR see
ciphertext only. Key names hold ids, revisions and the profile key, never a
value. A lock per entry (SET NX PX with a random token, deleted only by its
holder) lets one process on one host fetch a cold entry while the others wait;
a holder that dies lets go when the lock expires.

Redis is an optimisation, never a dependency of a query: every failure to talk
to it raises ``Unavailable`` (the caller then uses its per-process cache), is
logged once per process, and Redis is not asked again for ``RETRY_AFTER_S``.
"""
from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from credtool import crypto

from .kinds.base import Credentials

log = logging.getLogger(__name__)
T = TypeVar("T")

# Longer than a credentials workflow usually takes (a boto3 step: ~0.1-1 s); one that takes longer
# lets a second host fetch as well, which costs a call, not a failure.
LOCK_S = 30
# After an outage, Redis is asked again this long after it last failed.
RETRY_AFTER_S = 30
# Redis is on the query path: a host that does not answer must cost little before we give up on it.
CONNECT_TIMEOUT_S = 1.0
COMMAND_TIMEOUT_S = 2.0

# Deletes the lock only if it still holds our token: after expiry it may be someone else's.
_RELEASE = """
if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("del", KEYS[1])
end
return 0
"""


class Unavailable(Exception):
    """Redis did not answer (or is resting after an outage): use the per-process cache."""


@dataclass(frozen=True)
class Entry:
    credentials: Credentials
    # The fingerprint whose rejection made someone fetch these (None for a plain expiry).
    refetched_for: str | None
    # False for an entry kept only so that concurrent retries after a refusal share one refetch
    # (a configuration with a cache time of 0): a plain lookup must fetch anew.
    reusable: bool
    # When Redis drops it (this process's monotonic clock); 0 when not known.
    expires_at: float = 0.0


class SharedCache:
    """Encrypted entries, locks and outage bookkeeping on one Redis database."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=COMMAND_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0), health_check_interval=30)
        self._release = self._client.register_script(_RELEASE)
        self._down_until = 0.0
        self._warned = False
        self._state = threading.Lock()

    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _call(self, action: Callable[[], T]) -> T:
        if not self.available():
            raise Unavailable
        try:
            return action()
        except (redis.RedisError, OSError) as exc:
            with self._state:
                self._down_until = time.monotonic() + RETRY_AFTER_S
                first, self._warned = not self._warned, True
            if first:  # once per process: an outage must not write a line per query
                log.warning("shared credential cache unreachable (%s): each worker process caches fetched "
                            "credentials itself until it answers (asked again every %s s)",
                            type(exc).__name__, RETRY_AFTER_S)
            raise Unavailable from None

    def get(self, key: str) -> Entry | None:
        token, ttl_ms = self._call(lambda: self._client.pipeline(transaction=False).get(key).pttl(key).execute())
        if token is None:
            return None
        try:
            data = crypto.decrypt_json(token.decode())
        except (crypto.DecryptionError, ValueError, UnicodeDecodeError):
            # Written with a key this host lacks (or not by us): a miss, refetched and overwritten.
            log.warning("shared credential cache: entry %s cannot be decrypted here; fetching anew", key)
            return None
        credentials = Credentials(data["integration_id"], data["values"], hidden=tuple(data["hidden"]))
        expires_at = time.monotonic() + ttl_ms / 1000 if ttl_ms > 0 else 0.0
        return Entry(credentials, data["refetched_for"], data["reusable"], expires_at)

    def put(self, key: str, entry: Entry, ttl_s: float) -> None:
        credentials = entry.credentials
        token = crypto.encrypt_json({
            "integration_id": credentials.integration_id, "values": credentials.values,
            "hidden": list(credentials.hidden), "refetched_for": entry.refetched_for, "reusable": entry.reusable,
        })
        self._call(lambda: self._client.set(key, token, px=max(1, int(ttl_s * 1000))))

    def lock(self, key: str) -> str | None:
        """A token if we now hold ``key``'s lock (for ``LOCK_S`` at most), else None."""
        token = secrets.token_hex(16)
        taken = self._call(lambda: self._client.set(_lock_key(key), token, nx=True, px=LOCK_S * 1000))
        return token if taken else None

    def unlock(self, key: str, token: str) -> None:
        self._call(lambda: self._release(keys=[_lock_key(key)], args=[token]))

    def locked(self, key: str) -> bool:
        return bool(self._call(lambda: self._client.exists(_lock_key(key))))


def _lock_key(key: str) -> str:
    return key + ":lock"
