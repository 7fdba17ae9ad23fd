"""The global counters every cached feed is keyed on (corpus version, current model), and the
corpus change log that lets a process bring its model up to the corpus without a refit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis
from redis.client import Pipeline

from feed.storage.connection import mget_across_slots, slot_eval
from feed.storage.locks import LeaseLost

# Any article or category write bumps the corpus version, so cached feeds built before it miss.
CORPUS_VERSION_KEY = "nf:{corpus}:version"
# The model version every worker should rank with; set only after its artifact is fully stored.
MODEL_CURRENT_KEY = "nf:{corpus}:model"
# zset: article id -> the corpus version of its latest upsert or delete. A model fitted at
# corpus version v is brought up to date by the ids scored above v (feed/model/breaking.py).
CHANGES_KEY = "nf:{corpus}:changes"
# The log holds every change above this version; a refit trims what every served model holds.
CHANGES_FLOOR_KEY = "nf:{corpus}:changes:floor"

# The version bump and the change log entries of one write, atomic with the write itself
# (queued in its transaction): whoever reads version v finds every article it changed.
_BUMP = """
local version = redis.call('INCR', KEYS[1])
for i = 1, #ARGV do
  redis.call('ZADD', KEYS[2], version, ARGV[i])
end
return version
"""
_TRIM = """
local floor = tonumber(redis.call('GET', KEYS[2]) or '0')
local through = tonumber(ARGV[1])
if through <= floor then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', through)
redis.call('SET', KEYS[2], through)
return 1
"""

# Points every worker at a model only while the fit that made it still holds its lock (KEYS[2],
# in this slot, holding ARGV[2]): a fit whose lease lapsed never replaces a newer fit's model.
_SET_MODEL_HOLDING = """
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return {0} end
local previous = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
return {1, previous}
"""


@dataclass(frozen=True)
class Versions:
    corpus: int
    model: int


@dataclass(frozen=True)
class Changes:
    """The articles written after some corpus version, as of corpus version ``corpus``."""

    corpus: int
    ids: list[str]  # oldest change first
    # False: the log no longer reaches back that far (trimmed), or holds more than asked.
    complete: bool


def bump_corpus(pipe: Pipeline, changed: Sequence[str] = ()) -> None:
    """Queue the version bump of a write that changed these articles (none: a catalog write)."""
    if changed:
        slot_eval(pipe, _BUMP, [CORPUS_VERSION_KEY, CHANGES_KEY], changed)
    else:
        pipe.incr(CORPUS_VERSION_KEY)


def changes_since(r: redis.Redis, since: int, limit: int) -> Changes:
    """The ids written after corpus version ``since`` (at most ``limit``), read atomically with
    the version they bring the corpus to."""
    with r.pipeline(transaction=True) as pipe:
        pipe.get(CORPUS_VERSION_KEY)
        pipe.get(CHANGES_FLOOR_KEY)
        pipe.zrangebyscore(CHANGES_KEY, f"({since}", "+inf", start=0, num=limit + 1)
        corpus, floor, ids = pipe.execute()
    complete = int(floor or 0) <= since and len(ids) <= limit
    return Changes(int(corpus or 0), [i.decode() for i in ids[:limit]], complete)


def count_changes_since(r: redis.Redis, since: int) -> tuple[int, bool]:
    """How many articles were written after corpus version ``since``, and whether the log
    still reaches back that far: what extending a model fitted at ``since`` would take."""
    with r.pipeline(transaction=True) as pipe:
        pipe.get(CHANGES_FLOOR_KEY)
        pipe.zcount(CHANGES_KEY, f"({since}", "+inf")
        floor, count = pipe.execute()
    return int(count), int(floor or 0) <= since


def trim_changes(r: redis.Redis, through: int) -> None:
    """Forget the changes at or below corpus version ``through``: every model a process may
    still extend holds them. The floor only rises."""
    r.eval(_TRIM, 2, CHANGES_KEY, CHANGES_FLOOR_KEY, through)


def set_current_model(
    r: redis.Redis, version: int, *, holding: tuple[str, str] | None = None
) -> int | None:
    """Point every worker at ``version``; answers the version it replaces, if any.

    With ``holding`` (a lock key in this module's slot, and a token), only while that token
    holds the lock, checked in the same script; raises LeaseLost otherwise.
    """
    if holding is None:
        previous = r.set(MODEL_CURRENT_KEY, version, get=True)
    else:
        lock_key, token = holding
        reply = r.eval(_SET_MODEL_HOLDING, 2, MODEL_CURRENT_KEY, lock_key, version, token)
        if not reply[0]:
            raise LeaseLost(f"{lock_key} is no longer held by this fit")
        previous = reply[1] if len(reply) > 1 else None
    return None if previous is None else int(previous)


def parse(raw: list[bytes | None]) -> Versions:
    corpus, model = raw
    return Versions(corpus=int(corpus or 0), model=int(model or 0))


def read(r: redis.Redis) -> Versions:
    return parse(r.mget(CORPUS_VERSION_KEY, MODEL_CURRENT_KEY))


def read_with(r: redis.Redis, *keys: str) -> tuple[Versions, list[bytes | None]]:
    """The versions and more keys in one round trip: this is every cache hit's only read.

    On a cluster it is one MGET per slot (the versions' and the reader's), sent together.
    """
    corpus, model, *values = mget_across_slots(r, [CORPUS_VERSION_KEY, MODEL_CURRENT_KEY, *keys])
    return parse([corpus, model]), values
