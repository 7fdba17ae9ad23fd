"""Expiring Redis locks owned by a random token, so only the holder can release them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def acquire(r: redis.Redis, key: str, ttl_ms: int) -> str | None:
    """The token that releases the lock, or None when someone else holds it."""
    token = uuid.uuid4().hex
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
