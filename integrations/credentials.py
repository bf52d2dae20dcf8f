"""Where an integration's credentials come from: the seam between static and fetched.

A *source* turns a Configuration row (for the profile a query runs under) into
``Credentials`` (plain values, only in the worker's memory). Static credentials
come from the form's values and the encrypted secrets. Fetched ones come from a
workflow's response, run under the query's profile, rendered into the fields'
``{{workflow.response...}}`` bindings, on the worker, and are kept in this
process's memory for the configuration's cache time.

The cache is per worker process and keyed by configuration and profile (the
Default configuration's workflow may read a different secret for each
profile); the worker runs a thread pool (settings), so one process = one host's
cache, and a lock per key makes concurrent queries wait for a single workflow
run instead of starting one each. With ``CREDTOOL_CREDENTIAL_CACHE`` set,
``SharedFetchedSource`` keeps them in Redis instead (encrypted, see
shared_cache.py), so every worker host shares one fetch per entry, and falls
back to the per-process cache while Redis does not answer.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Protocol, TypeVar

from django.conf import settings

from credtool.masking import mask_text, secret_values
from workflows import runner
from workflows.bindings import BindingError, evaluate_text, has_bindings
from workflows.models import Workflow

from .kinds.base import Credentials, StageError
from profiles.models import Profile

from .models import Configuration
from .shared_cache import LOCK_S, Entry, SharedCache, Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


class CredentialSource(Protocol):
    def credentials_for(self, configuration: Configuration, profile: Profile | None, *,
                        rejected: str | None = None) -> Credentials:
        """The credentials to connect with; ``rejected`` is a fingerprint the database just refused."""
        ...


class StaticSource:
    """The values typed into the form; secrets decrypted from the row."""

    def credentials_for(self, configuration: Configuration, profile: Profile | None, *,
                        rejected: str | None = None) -> Credentials:
        secrets = configuration.secrets()
        return Credentials(configuration.integration_id, {**configuration.config, **secrets},
                           hidden=tuple(str(v) for v in secrets.values() if v))


CacheKey = tuple[int, str]  # (configuration id, profile key)


@dataclass
class _Cached:
    credentials: Credentials
    fetched_at: float
    revisions: tuple[int, int]
    # The fingerprint whose rejection made us fetch these (None for a plain expiry).
    refetched_for: str | None = None


class _Fetcher:
    """What both fetched sources share: a lock per entry for this process's threads, and the fetch
    itself, refused when this thread is already fetching the same entry (a credentials workflow
    whose Integration step queries the very integration it fetches for would wait for ever)."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._fetching = threading.local()  # the entries this thread is fetching now

    def _lock_for(self, key: Hashable) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def _refuse_loop(self, key: Hashable, configuration: Configuration) -> None:
        if key in self._fetching.__dict__.setdefault("keys", set()):
            name = configuration.credentials_workflow.name if configuration.credentials_workflow else "its workflow"
            raise StageError("workflow", f"{name} queries the integration whose credentials it fetches: a loop "
                                         "(an Integration step of a credentials workflow must use another integration)")

    def _fetch(self, key: Hashable, configuration: Configuration, profile: Profile | None) -> Credentials:
        self._refuse_loop(key, configuration)
        fetching: set[Hashable] = self._fetching.keys
        fetching.add(key)
        try:
            return fetch(configuration.credentials_workflow, stored_values(configuration),
                         integration_id=configuration.integration_id, trigger="credentials",
                         secret_fields=configuration.kind_impl.secret_fields(), profile=profile)
        finally:
            fetching.discard(key)


class FetchedSource(_Fetcher):
    """Runs the integration's workflow and renders its bindings; caches the result for a bounded time."""

    def __init__(self) -> None:
        super().__init__()
        self._cache: dict[CacheKey, _Cached] = {}

    def _fresh(self, key: CacheKey, configuration: Configuration, *, rejected: str | None) -> Credentials | None:
        entry = self._cache.get(key)
        if entry is None or entry.revisions != _revisions(configuration):
            return None
        if rejected is not None:
            # Someone else already replaced the rejected credentials: use theirs. If
            # they were refetched because of this same rejection and came back the
            # same, fetching once more would not help either.
            if entry.credentials.fingerprint != rejected or entry.refetched_for == rejected:
                return entry.credentials
            return None
        if time.monotonic() - entry.fetched_at >= configuration.credentials_cache_s:
            return None
        return entry.credentials

    def credentials_for(self, configuration: Configuration, profile: Profile | None, *,
                        rejected: str | None = None) -> Credentials:
        key = (configuration.pk, profile.key if profile is not None else "")
        cached = self._fresh(key, configuration, rejected=rejected)
        if cached is not None:
            return cached
        self._refuse_loop(key, configuration)  # before the lock: this thread may be holding it
        with self._lock_for(key):
            cached = self._fresh(key, configuration, rejected=rejected)  # fetched while we waited?
            if cached is not None:
                return cached
            credentials = self._fetch(key, configuration, profile)
            if configuration.credentials_cache_s > 0 or rejected is not None:
                # With no cache time, the entry only lets concurrent retries share one refetch.
                self._cache[key] = _Cached(
                    credentials, time.monotonic(), _revisions(configuration), refetched_for=rejected)
            else:
                self._cache.pop(key, None)
            return credentials


# How long an entry fetched after a refusal lives for a configuration with no cache time: long enough
# for the other hosts' retries of the same refusal to find it.
RETRY_ENTRY_S = 60
# How often a process waiting for another host's fetch looks for its value.
WAIT_POLL_S = 0.05


class SharedFetchedSource(_Fetcher):
    """Fetched credentials cached in Redis for every worker process and host.

    The entry's key names the integration, configuration and profile and both
    revisions, so an edit of the configuration or its workflow makes older
    entries unreachable (Redis expires them); its lifetime is the configuration's
    cache time. A cold entry is fetched by whoever takes its Redis lock; the
    others wait for the value (at most the lock's life, then fetch themselves).
    After a refused login, whoever takes the lock first replaces the entry and
    records the refused fingerprint, so a host retrying the same refusal uses the
    replacement: one refetch per rotation across hosts. Threads of one process
    queue on a lock of their own before asking Redis, and a reusable entry read
    from Redis is remembered in this process until Redis expires it (a Redis
    read and a decryption cost ~0.3-0.5 ms a query; a retry after a refusal
    always asks Redis). While Redis does not answer, ``fallback`` (the
    per-process cache) serves.
    """

    def __init__(self, cache: SharedCache, fallback: FetchedSource) -> None:
        super().__init__()
        self._cache = cache
        self._fallback = fallback
        self._memo: dict[str, Entry] = {}

    def credentials_for(self, configuration: Configuration, profile: Profile | None, *,
                        rejected: str | None = None) -> Credentials:
        key = shared_key(configuration, profile)
        memo = self._memo.get(key)
        if rejected is None and memo is not None and time.monotonic() < memo.expires_at:
            return memo.credentials
        if not self._cache.available():
            return self._fallback.credentials_for(configuration, profile, rejected=rejected)
        if configuration.credentials_cache_s == 0 and rejected is None:
            return self._fetch(key, configuration, profile)  # nothing to share: fetched before every query
        try:
            return self._shared(key, configuration, profile, rejected)
        except Unavailable:
            return self._fallback.credentials_for(configuration, profile, rejected=rejected)

    def _shared(self, key: str, configuration: Configuration, profile: Profile | None,
                rejected: str | None) -> Credentials:
        found = self._look(key, rejected)
        if found is not None:
            return found
        self._refuse_loop(key, configuration)
        with self._lock_for(key):
            deadline = time.monotonic() + LOCK_S + 2
            while True:
                found = self._look(key, rejected)  # fetched while we waited?
                if found is not None:
                    return found
                token = self._cache.lock(key)
                if token is not None:
                    try:
                        found = self._look(key, rejected)  # stored between our read and our lock?
                        if found is not None:
                            return found
                        credentials = self._fetch(key, configuration, profile)
                        self._store(key, configuration, credentials, rejected)
                        return credentials
                    finally:
                        try:
                            self._cache.unlock(key, token)
                        except Unavailable:
                            pass  # it expires
                # Another process fetches: wait for its value, or for its lock to go (stored,
                # failed, or its holder died and the lock expired), then look again.
                while self._cache.locked(key) and time.monotonic() < deadline:
                    time.sleep(WAIT_POLL_S)
                    found = self._look(key, rejected)
                    if found is not None:
                        return found
                if time.monotonic() >= deadline:
                    log.warning("shared credential cache: %s stayed locked for %s s; fetching here", key, LOCK_S)
                    credentials = self._fetch(key, configuration, profile)
                    self._store(key, configuration, credentials, rejected)
                    return credentials

    def _look(self, key: str, rejected: str | None) -> Credentials | None:
        """The credentials in Redis if this lookup may use them; remembered when later lookups may too."""
        entry = self._cache.get(key)
        found = _usable(entry, rejected)
        if found is not None and entry is not None and entry.reusable:
            self._remember(key, entry)
        return found

    def _store(self, key: str, configuration: Configuration, credentials: Credentials,
               rejected: str | None) -> None:
        cache_s = configuration.credentials_cache_s
        entry = Entry(credentials, rejected, reusable=cache_s > 0, expires_at=time.monotonic() + cache_s)
        if entry.reusable:
            self._remember(key, entry)
        try:
            self._cache.put(key, entry, cache_s if cache_s > 0 else RETRY_ENTRY_S)
        except Unavailable:
            pass  # the credentials are good; the next query finds Redis down and uses the fallback

    def _remember(self, key: str, entry: Entry) -> None:
        now = time.monotonic()
        if len(self._memo) > 256:  # entries of old revisions: dropped once expired
            for stale in [k for k, e in self._memo.items() if e.expires_at <= now]:
                self._memo.pop(stale, None)
        self._memo[key] = entry


def _usable(entry: Entry | None, rejected: str | None) -> Credentials | None:
    """The entry's credentials if this lookup may use them (Redis has already dropped expired ones)."""
    if entry is None:
        return None
    if rejected is not None:
        # As FetchedSource._fresh: someone replaced the refused credentials (use theirs), or
        # refetched for this very refusal and got the same back (fetching again would not help).
        if entry.credentials.fingerprint != rejected or entry.refetched_for == rejected:
            return entry.credentials
        return None
    return entry.credentials if entry.reusable else None


def shared_key(configuration: Configuration, profile: Profile | None) -> str:
    """The entry's Redis key: ids, revisions and the profile key only, never a value."""
    revision, workflow_revision = _revisions(configuration)
    return (f"credtool:credentials:i{configuration.integration_id}:c{configuration.pk}.{revision}"
            f":w{configuration.credentials_workflow_id or 0}.{workflow_revision}"
            f":p{profile.key if profile is not None else ''}")


def _revisions(configuration: Configuration) -> tuple[int, int]:
    workflow = configuration.credentials_workflow
    return configuration.revision, workflow.revision if workflow is not None else 0


def fetch(workflow: Workflow | None, values: dict[str, Any], *, integration_id: int | None, trigger: str,
          secret_fields: tuple[str, ...], profile: Profile | None) -> Credentials:
    """Run the workflow now and render the bindings in ``values`` with its response.

    The workflow's record masks what the secret fields render to, as well as
    what it returned under secret-looking keys: a password bound from a key
    named "pw" stays out of the run's page too.
    """
    if workflow is None:
        raise StageError("workflow", "no workflow is chosen to fetch the credentials")
    rendered: list[Credentials] = []

    def hide(outcome: runner.WorkflowOutcome) -> list[str]:
        try:
            rendered.append(render(integration_id, values, workflow.name, outcome.response, secret_fields))
        except StageError:
            return []  # reported below, when rendered for real
        return list(rendered[0].hidden)

    try:
        outcome = runner.run_now(workflow, trigger=trigger, hide=hide, profile=profile)
    except Exception as exc:
        log.exception("credentials workflow %s could not run", workflow.pk)
        raise StageError("workflow", f"{workflow.name} could not run ({type(exc).__name__})") from None
    if not outcome.ok:
        # The recorded run holds the masked details; the message is masked the same way.
        raise StageError("workflow", f"{workflow.name} {outcome.masked_error or 'failed'}")
    return rendered[0] if rendered else render(integration_id, values, workflow.name, outcome.response, secret_fields)


def stored_values(configuration: Configuration) -> dict[str, Any]:
    return {**configuration.config, **configuration.secrets()}


def render(integration_id: int | None, values: dict[str, Any], workflow_name: str, response: Any,
           secret_fields: tuple[str, ...]) -> Credentials:
    """The fields' bindings rendered with the workflow's response. What the secret fields render to
    and what the response holds under secret-looking keys are kept apart, to be masked in messages."""
    rendered: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, str) and has_bindings(value):
            try:
                rendered[name] = evaluate_text(value, {workflow_name: response})
            except BindingError as exc:
                raise StageError("binding", f"{name}: {exc}") from None
        else:
            rendered[name] = value
    hidden = secret_values(response) + [str(rendered[n]) for n in secret_fields if rendered.get(n)]
    return Credentials(integration_id, rendered, hidden=tuple(dict.fromkeys(hidden)))


static_source = StaticSource()
fetched_source = FetchedSource()


@functools.cache
def _shared_source(url: str) -> SharedFetchedSource:
    return SharedFetchedSource(SharedCache(url), fetched_source)


def source_for(configuration: Configuration) -> CredentialSource:
    if not configuration.fetch_credentials:
        return static_source
    if settings.CREDENTIAL_CACHE_URL:
        return _shared_source(settings.CREDENTIAL_CACHE_URL)
    return fetched_source


def with_credentials(configuration: Configuration, profile: Profile | None, use: Callable[[Credentials], T]) -> T:
    """Get the credentials and call ``use``; after a rejected login, refetch and retry once.

    A rotated secret shows up as the database refusing the cached password. The
    retry happens only when the refetched credentials differ from the refused
    ones, so a wrong password in the secret itself fails at once, without a loop.
    Every error that leaves here has the credentials' secret texts masked.
    """
    source = source_for(configuration)
    credentials = source.credentials_for(configuration, profile)
    try:
        return use(credentials)
    except StageError as exc:
        if not (exc.auth_failure and configuration.fetch_credentials):
            raise masked(exc, credentials) from None
        log.info("integration %s (configuration %s): login refused, fetching its credentials again",
                 configuration.integration_id, configuration.pk)
        refreshed = source.credentials_for(configuration, profile, rejected=credentials.fingerprint)
        if refreshed.fingerprint == credentials.fingerprint:
            raise masked(exc, credentials) from None
        try:
            return use(refreshed)
        except StageError as again:
            raise masked(again, refreshed, credentials) from None


def masked(error: StageError, *credentials: Credentials) -> StageError:
    """``error`` with every secret text of ``credentials`` masked in its message."""
    hidden = [text for each in credentials for text in each.hidden]
    error.message = mask_text(error.message, hidden)
    error.args = (error.message,)
    return error
