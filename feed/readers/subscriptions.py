"""Each user's followed categories, with a version that cached feeds are checked against."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import redis
from redis.client import Pipeline

from feed.corpus import categories

# Both keys carry the user's hash tag so the scripts below stay within one cluster slot.
SUBS_KEY = "nf:{u:%s}:subs"  # set of category slugs
VERSION_KEY = "nf:{u:%s}:subs:v"  # bumped on every effective change

# Each script changes the set, and only on an effective change bumps the version and deletes
# the keys the caller names (cached renders of the old set: same hash tag, same slot), then
# answers [changed, members...], all atomically: a reply means the change and its
# invalidation both happened.
_EPILOGUE = """
if changed == 1 then
  redis.call('INCR', KEYS[2])
  for i = 3, #KEYS do redis.call('DEL', KEYS[i]) end
end
local reply = redis.call('SMEMBERS', KEYS[1])
table.insert(reply, 1, changed)
return reply
"""
_FOLLOW = "local changed = redis.call('SADD', KEYS[1], ARGV[1])" + _EPILOGUE
_UNFOLLOW = "local changed = redis.call('SREM', KEYS[1], ARGV[1])" + _EPILOGUE
_REPLACE = (
    """
local changed = 0
local same = redis.call('SCARD', KEYS[1]) == #ARGV
if same and #ARGV > 0 then
  for i, v in ipairs(redis.call('SMISMEMBER', KEYS[1], unpack(ARGV))) do
    if v == 0 then same = false break end
  end
end
if not same then
  redis.call('DEL', KEYS[1])
  if #ARGV > 0 then redis.call('SADD', KEYS[1], unpack(ARGV)) end
  changed = 1
end
"""
    + _EPILOGUE
)


def get(r: redis.Redis, user_id: str) -> list[str]:
    return sorted(m.decode() for m in r.smembers(SUBS_KEY % user_id))


def follow(r: redis.Redis, user_id: str, slug: str, invalidate: Sequence[str] = ()) -> list[str]:
    """Follow one category; answers the followed set. ``invalidate``: keys of this user's
    slot to delete if anything changed."""
    categories.require(r, [slug])
    return _run(r, _FOLLOW, user_id, [slug], invalidate)


def unfollow(r: redis.Redis, user_id: str, slug: str, invalidate: Sequence[str] = ()) -> list[str]:
    categories.require(r, [slug])
    return _run(r, _UNFOLLOW, user_id, [slug], invalidate)


def replace(
    r: redis.Redis, user_id: str, slugs: Iterable[str], invalidate: Sequence[str] = ()
) -> list[str]:
    """Follow exactly these; answers the followed set."""
    wanted = sorted(set(slugs))
    categories.require(r, wanted)
    return _run(r, _REPLACE, user_id, wanted, invalidate)


def _run(
    r: redis.Redis, script: str, user_id: str, args: list[str], invalidate: Sequence[str]
) -> list[str]:
    keys = [SUBS_KEY % user_id, VERSION_KEY % user_id, *invalidate]
    _changed, *members = r.eval(script, len(keys), *keys, *args)
    return sorted(m.decode() for m in members)


def queue_version(pipe: Pipeline, user_id: str) -> None:
    pipe.get(VERSION_KEY % user_id)


def queue_members(pipe: Pipeline, user_id: str) -> None:
    pipe.smembers(SUBS_KEY % user_id)
