"""Each user's reading history and hidden articles, with the version cached feeds check."""

from __future__ import annotations

from redis.client import Pipeline

# One user's keys share the {u:<id>} hash tag with the feed cache and subscriptions.
READ_KEY = "nf:{u:%s}:read"  # zset article id -> when clicked or read (epoch seconds)
HIDDEN_KEY = "nf:{u:%s}:hidden"  # zset article id -> when hidden
VERSION_KEY = "nf:{u:%s}:history:v"  # bumped by every click, read or hide

# The profile uses recent reading; older entries fall off so the keys stay bounded.
MAX_READ = 200
MAX_HIDDEN = 2000
CONSUMING = frozenset({"click", "read"})


def queue_event(pipe: Pipeline, user_id: str, kind: str, article_id: str, when: float) -> bool:
    """Queue the history writes of one event; answers whether it changes the user's feed.

    Impressions change nothing here: a feed is rebuilt for what the reader did, not for what
    they were shown, or every page view would recompute the feed it shows.
    """
    if kind in CONSUMING:
        pipe.zadd(READ_KEY % user_id, {article_id: when})
        pipe.zremrangebyrank(READ_KEY % user_id, 0, -MAX_READ - 1)
    elif kind == "hide":
        pipe.zadd(HIDDEN_KEY % user_id, {article_id: when})
        pipe.zremrangebyrank(HIDDEN_KEY % user_id, 0, -MAX_HIDDEN - 1)
    else:
        return False
    pipe.incr(VERSION_KEY % user_id)
    return True


def queue_version(pipe: Pipeline, user_id: str) -> None:
    pipe.get(VERSION_KEY % user_id)


def queue_read(pipe: Pipeline, user_id: str) -> None:
    """Queue the history (newest first, with times) and the hidden ids: two replies."""
    pipe.zrevrange(READ_KEY % user_id, 0, -1, withscores=True)
    pipe.zrange(HIDDEN_KEY % user_id, 0, -1)


def queue_hidden_among(pipe: Pipeline, user_id: str, article_ids: list[str]) -> None:
    """Queue which of these articles the user hid (one reply: a list of 0/1)."""
    pipe.zmscore(HIDDEN_KEY % user_id, article_ids)
