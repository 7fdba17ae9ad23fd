"""Each user's followed categories, with a version that cached feeds are checked against."""

from __future__ import annotations

from collections.abc import Iterable

import redis
from redis.client import Pipeline

from feed import categories

# Both keys carry the user's hash tag so the scripts below stay within one cluster slot.
SUBS_KEY = "nf:{u:%s}:subs"  # set of category slugs
VERSION_KEY = "nf:{u:%s}:subs:v"  # bumped on every effective change

# Only an effective change bumps the version, so repeated toggles do not drop the cache.
_FOLLOW = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then redis.call('INCR', KEYS[2]) return 1 end
return 0
"""
_UNFOLLOW = """
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 then redis.call('INCR', KEYS[2]) return 1 end
return 0
"""
_REPLACE = """
local same = redis.call('SCARD', KEYS[1]) == #ARGV
if same and #ARGV > 0 then
  for i, v in ipairs(redis.call('SMISMEMBER', KEYS[1], unpack(ARGV))) do
    if v == 0 then same = false break end
  end
end
if same then return 0 end
redis.call('DEL', KEYS[1])
if #ARGV > 0 then redis.call('SADD', KEYS[1], unpack(ARGV)) end
redis.call('INCR', KEYS[2])
return 1
"""


def _keys(user_id: str) -> list[str]:
    return [SUBS_KEY % user_id, VERSION_KEY % user_id]


def get(r: redis.Redis, user_id: str) -> list[str]:
    return sorted(m.decode() for m in r.smembers(SUBS_KEY % user_id))


def follow(r: redis.Redis, user_id: str, slug: str) -> bool:
    """Follow one category; answers whether anything changed."""
    categories.require(r, [slug])
    return bool(r.eval(_FOLLOW, 2, *_keys(user_id), slug))


def unfollow(r: redis.Redis, user_id: str, slug: str) -> bool:
    categories.require(r, [slug])
    return bool(r.eval(_UNFOLLOW, 2, *_keys(user_id), slug))


def replace(r: redis.Redis, user_id: str, slugs: Iterable[str]) -> tuple[list[str], bool]:
    """Follow exactly these; answers the set and whether anything changed."""
    wanted = sorted(set(slugs))
    categories.require(r, wanted)
    return wanted, bool(r.eval(_REPLACE, 2, *_keys(user_id), *wanted))


def queue_version(pipe: Pipeline, user_id: str) -> None:
    pipe.get(VERSION_KEY % user_id)


def queue_members(pipe: Pipeline, user_id: str) -> None:
    pipe.smembers(SUBS_KEY % user_id)
