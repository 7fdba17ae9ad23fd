"""Who read recently: the readers whose first pages are worth precomputing after a reindex.

A reader counts as active when a feed is built for them (a cache miss) or when they send
events. Cache hits are not recorded, so a hit stays one Redis round trip; an active reader
still misses at least once per feed TTL, and their events keep them in the set meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

ACTIVE_KEY = "nf:active"  # zset user id -> epoch of their last recorded activity
# Newest readers kept, whatever the window: bounds the set (about 100 bytes a member) when
# many readers come and go within one window.
MAX_TRACKED = 200_000


def touch(r: redis.Redis, user_ids: Iterable[str], now: float) -> None:
    """Record that these readers were active at ``now``."""
    members = dict.fromkeys(user_ids, now)
    if not members:
        return
    pipe = r.pipeline(transaction=False)
    pipe.zadd(ACTIVE_KEY, members)
    # Cheap when nothing is over the cap: the range to remove is empty.
    pipe.zremrangebyrank(ACTIVE_KEY, 0, -(MAX_TRACKED + 1))
    pipe.execute()


def recent(r: redis.Redis, since: float, limit: int) -> list[str]:
    """Readers active at or after ``since``, most recent first, at most ``limit``.

    Entries older than ``since`` are dropped on the way: nothing reads them again.
    """
    pipe = r.pipeline(transaction=False)
    pipe.zremrangebyscore(ACTIVE_KEY, "-inf", f"({since}")
    pipe.zrevrangebyscore(ACTIVE_KEY, "+inf", since, start=0, num=limit)
    _, found = pipe.execute()
    return [member.decode() for member in found]


def count(r: redis.Redis) -> int:
    return int(r.zcard(ACTIVE_KEY))
