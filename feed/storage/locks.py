"""Expiring Redis locks owned by a random token, so only the holder can release them; leases
that a thread keeps alive while their holder works; and telling an optimistic-lock (WATCH)
conflict from a lost connection."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Self

import redis

log = logging.getLogger(__name__)

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Extends the lock only while it still holds this token: a holder whose lease lapsed must not
# extend the next holder's.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# A lease is renewed this many times per TTL: a holder misses several renewals (a slow
# command, a busy interpreter) before it loses the lease.
RENEWALS_PER_TTL = 5


class LeaseLost(Exception):
    """The lease lapsed or passed to another holder while its work ran; the work must not be
    published. Not a FeedError: no client causes it, and it never reaches the API."""


def new_token() -> str:
    return uuid.uuid4().hex


def acquire(r: redis.Redis, key: str, ttl_ms: int) -> str | None:
    """The token that releases the lock, or None when someone else holds it."""
    token = new_token()
    return token if r.set(key, token, nx=True, px=ttl_ms) else None


def release(r: redis.Redis, key: str, token: str) -> None:
    # A holder that outlived its TTL must not delete the next holder's lock.
    r.eval(_RELEASE, 1, key, token)


def renew(r: redis.Redis, key: str, token: str, ttl_ms: int) -> bool:
    """Give the lock ``ttl_ms`` more if ``token`` still holds it; False when it does not."""
    return bool(r.eval(_RENEW, 1, key, token, ttl_ms))


@contextmanager
def held(r: redis.Redis, key: str, ttl_ms: int) -> Iterator[bool]:
    """Yield whether the lock was won; release it on exit if so."""
    token = acquire(r, key, ttl_ms)
    try:
        yield token is not None
    finally:
        if token is not None:
            release(r, key, token)


class Renewer:
    """A daemon thread that calls ``beat`` every ``every_seconds`` until stopped, or until
    ``beat`` answers False. A Redis error skips one beat (logged once until a beat succeeds):
    what the beats keep alive lapses by its TTL if Redis stays away, and not before."""

    def __init__(self, name: str, every_seconds: float, beat: Callable[[], bool]) -> None:
        self._name = name
        self._every = every_seconds
        self._beat = beat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self._every):
            try:
                alive = self._beat()
            except redis.RedisError as exc:
                if not failing:
                    log.warning("%s: Redis did not answer (%s); retrying", self._name, exc)
                failing = True
                continue
            failing = False
            if not alive:
                return


class Lease:
    """A lock held while work runs: renewed every fifth of its TTL as long as this token still
    holds it, so the lock outlives any long work, yet a holder that dies (kill -9, a lost
    host) lets it lapse within one TTL. ``lost`` tells the work it no longer holds it."""

    def __init__(self, r: redis.Redis, key: str, token: str, ttl_ms: int) -> None:
        self.key = key
        self.token = token
        self._redis = r
        self._ttl_ms = ttl_ms
        self._lost = threading.Event()
        self._renewer = Renewer(f"lease {key}", ttl_ms / 1000 / RENEWALS_PER_TTL, self._renew)

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def __enter__(self) -> Self:
        self._renewer.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._renewer.stop()

    def _renew(self) -> bool:
        if renew(self._redis, self.key, self.token, self._ttl_ms):
            return True
        log.warning("lease %s lapsed or was taken by another holder", self.key)
        self._lost.set()
        return False


def raise_if_disconnected(error: redis.WatchError) -> None:
    """Raise the connection error or timeout behind a WatchError, if there is one.

    redis-py reports a connection error or timeout after WATCH (Redis restarted, or still
    loading its data and answering LOADING) as a WatchError, so that callers retry. Retrying
    cannot help then, and the request must answer 503 (unavailable), not 409 (write_conflict):
    callers call this first in their ``except redis.WatchError`` and retry only a real conflict.
    """
    cause = error.__context__
    if isinstance(cause, redis.ConnectionError | redis.TimeoutError):
        raise cause from None
