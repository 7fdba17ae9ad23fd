"""Expiring Redis locks owned by a random token, so only the holder can release them; and
telling an optimistic-lock (WATCH) conflict from a lost connection."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def new_token() -> str:
    return uuid.uuid4().hex


def acquire(r: redis.Redis, key: str, ttl_ms: int) -> str | None:
    """The token that releases the lock, or None when someone else holds it."""
    token = new_token()
    return token if r.set(key, token, nx=True, px=ttl_ms) else None


def release(r: redis.Redis, key: str, token: str) -> None:
    # A holder that outlived its TTL must not delete the next holder's lock.
    r.eval(_RELEASE, 1, key, token)


@contextmanager
def held(r: redis.Redis, key: str, ttl_ms: int) -> Iterator[bool]:
    """Yield whether the lock was won; release it on exit if so."""
    token = acquire(r, key, ttl_ms)
    try:
        yield token is not None
    finally:
        if token is not None:
            release(r, key, token)


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
