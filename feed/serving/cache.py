"""Each user's ranked feed in Redis: a compact list keyed by the versions it was built from."""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import redis
from redis.client import Pipeline

from feed.storage import locks

# Every key of one user shares the {u:<id>} hash tag, so a feed request stays in one slot.
FEED_KEY = "nf:{u:%s}:feed"  # list: header JSON, then "id\t<item JSON tail>" entries
# A replaced list, kept so open cursors keep paging it. The build id (from a cursor) comes
# last, after a prefix that begins no other key: no build id can name the lock or the page.
RETIRED_KEY = "nf:{u:%s}:feed:retired:%s"
LOCK_KEY = "nf:{u:%s}:feed:lock"  # single-flight: one build per user at a time
# The first page as served (header line, then the response body), so a repeat visit costs
# one round trip and no JSON work. Written only while the subscription version it was
# built for is still current; subscription changes delete it.
PAGE_KEY = "nf:{u:%s}:feed:page"

# Far longer than a build (milliseconds), yet short: a lock whose holder could not release it
# (Redis went away mid-build, and the lock came back with its data) makes that user's next
# requests wait until it lapses. A build outliving it only means a second, redundant build.
BUILD_LOCK_MS = 2_000
HEADER_INDEX = 0

# Replace the current list, retiring the old one under its build id for cursor holders.
# Only while the user's follows and history are still the ones the build was made for
# (ARGV[3]): a build that a follow change overtook would replace a newer list with one
# labelled for versions already gone. It is kept under its own build id instead, so the
# cursors of the page it answered keep working.
_STORE = """
local user = (redis.call('GET', KEYS[4]) or '0') .. '.' .. (redis.call('GET', KEYS[5]) or '0')
if user ~= ARGV[3] then
  redis.call('DEL', KEYS[3])
  redis.call('RPUSH', KEYS[3], unpack(ARGV, 4))
  redis.call('EXPIRE', KEYS[3], ARGV[2])
  return 0
end
local old = redis.call('LINDEX', KEYS[1], 0)
if old and KEYS[2] ~= KEYS[1] then
  redis.call('RENAME', KEYS[1], KEYS[2])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
redis.call('RPUSH', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""
_STORE_PAGE = """
local user = (redis.call('GET', KEYS[2]) or '0') .. '.' .. (redis.call('GET', KEYS[3]) or '0')
if user ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""


@dataclass(frozen=True)
class Inputs:
    """Everything a ranked list depends on: a cached list serves only while all are current."""

    corpus: int
    model: int
    user: str  # "<subscription version>.<history version>"
    variant: str  # "<experiment>:<variant>", or "" for the default ranker


@dataclass(frozen=True)
class Header:
    build_id: str
    inputs: Inputs
    built_at: float

    def encode(self) -> str:
        i = self.inputs
        return json.dumps([self.build_id, i.corpus, i.model, i.user, i.variant, self.built_at])

    @classmethod
    def decode(cls, raw: bytes) -> Header:
        build_id, corpus, model, user, variant, built_at = json.loads(raw)
        return cls(build_id, Inputs(corpus, model, user, variant), built_at)


@functools.lru_cache(maxsize=4096)
def _json_text(text: str) -> bytes:
    """A string as JSON; reasons repeat within and across builds."""
    return json.dumps(text).encode()


@dataclass(frozen=True)
class Entry:
    """One ranked article: its id, and the end of its feed item as JSON (score and reason),
    which is spliced onto the article's stored card when a page is rendered."""

    id: str
    tail: bytes

    @classmethod
    def of(cls, article_id: str, score: float, reason: str) -> Entry:
        # Formatted by hand: a build makes hundreds, and json.dumps of a dict was a third of a
        # cold build's Python time. The same bytes: json writes floats with repr too.
        score_json = repr(round(score, 6)).encode()
        return cls(
            article_id, b',"score":' + score_json + b',"reason":' + _json_text(reason) + b"}"
        )

    def encode(self) -> bytes:
        return self.id.encode() + b"\t" + self.tail

    @classmethod
    def decode(cls, raw: bytes) -> Entry:
        article_id, _, tail = raw.partition(b"\t")
        return cls(article_id.decode(), tail)


@dataclass(frozen=True)
class RenderedPage:
    corpus: int
    model: int
    variant: str
    limit: int
    body: bytes

    @classmethod
    def decode(cls, raw: bytes | None) -> RenderedPage | None:
        if raw is None:
            return None
        head, _, body = raw.partition(b"\n")
        corpus, model, variant, limit = head.split(b" ")
        return cls(int(corpus), int(model), variant.decode().strip("-"), int(limit), body)

    def encode(self) -> bytes:
        head = f"{self.corpus} {self.model} {self.variant or '-'} {self.limit}\n"
        return head.encode() + self.body


def new_build_id() -> str:
    return uuid.uuid4().hex[:16]


def queue_first_page(pipe: Pipeline, user_id: str, count: int) -> None:
    """Queue the header and the first ``count`` entries (one reply: a list)."""
    pipe.lrange(FEED_KEY % user_id, 0, count)


def split_first_page(raw: list[bytes]) -> tuple[Header | None, list[Entry]]:
    if not raw:
        return None, []
    return Header.decode(raw[0]), [Entry.decode(e) for e in raw[1:]]


def rendered_key(user_id: str) -> str:
    return PAGE_KEY % user_id


def store_rendered(
    r: redis.Redis,
    user_id: str,
    page: RenderedPage,
    user: str,
    ttl: int,
    version_keys: tuple[str, str],
) -> None:
    """Keep a rendered first page, unless the user's follows or history moved since its build.

    ``version_keys`` are the subscription and history version keys whose values ``user``
    joins; they are checked inside the script, so a concurrent change always wins.
    """
    r.eval(_STORE_PAGE, 3, PAGE_KEY % user_id, *version_keys, user, page.encode(), max(ttl, 1))


def queue_drop_rendered(pipe: Pipeline, user_id: str) -> None:
    pipe.delete(PAGE_KEY % user_id)


def read_page(
    r: redis.Redis, user_id: str, build_id: str, offset: int, count: int
) -> list[Entry] | None:
    """Entries ``offset..offset+count`` of the list built as ``build_id``; None once expired."""
    start, stop = offset + 1, offset + count
    pipe = r.pipeline(transaction=False)
    for key in (FEED_KEY % user_id, RETIRED_KEY % (user_id, build_id)):
        pipe.lindex(key, HEADER_INDEX)
        pipe.lrange(key, start, stop)
    current_header, current, retired_header, retired = pipe.execute()
    for header, entries in ((current_header, current), (retired_header, retired)):
        if header is not None and Header.decode(header).build_id == build_id:
            return [Entry.decode(e) for e in entries]
    return None


def keep_for_cursors(
    r: redis.Redis, user_id: str, header: Header, entries: Sequence[Entry], ttl: int
) -> None:
    """Keep a build that must not become the current list (made without the lock, or from an
    older model) under its build id, so the cursors its page hands out keep working."""
    key = RETIRED_KEY % (user_id, header.build_id)
    with r.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        pipe.rpush(key, header.encode(), *(e.encode() for e in entries))
        pipe.expire(key, ttl)
        pipe.execute()


def store(
    r: redis.Redis,
    user_id: str,
    header: Header,
    entries: Sequence[Entry],
    previous: Header | None,
    *,
    ttl: int,
    retired_ttl: int,
    version_keys: tuple[str, str],
) -> bool:
    """Make this build the user's current list, unless their follows or history moved since
    it was made (``version_keys`` as for ``store_rendered``); answers whether it became current.
    Either way its entries stay readable under its build id for the cursors it hands out."""
    retired = RETIRED_KEY % (user_id, previous.build_id) if previous else FEED_KEY % user_id
    return bool(
        r.eval(
            _STORE,
            5,
            FEED_KEY % user_id,
            retired,
            RETIRED_KEY % (user_id, header.build_id),
            *version_keys,
            ttl,
            retired_ttl,
            header.inputs.user,
            header.encode(),
            *(e.encode() for e in entries),
        )
    )


def acquire_build(
    r: redis.Redis, user_id: str, count: int
) -> tuple[str | None, Header | None, list[Entry]]:
    """Try the build lock, and read the current list as it is once the lock is taken (one
    round trip): the lock's token (None: someone else holds it), the list's header and first
    ``count`` entries."""
    token = locks.new_token()
    pipe = r.pipeline(transaction=False)
    pipe.set(LOCK_KEY % user_id, token, nx=True, px=BUILD_LOCK_MS)
    pipe.lrange(FEED_KEY % user_id, 0, count)
    won, raw = pipe.execute()
    return (token if won else None), *split_first_page(raw)


def release_build(r: redis.Redis, user_id: str, token: str) -> None:
    locks.release(r, LOCK_KEY % user_id, token)


def wait_for_build(
    r: redis.Redis,
    user_id: str,
    wanted: Inputs,
    count: int,
    deadline: float,
    replacing: str | None,
) -> tuple[Header, list[Entry]] | None:
    """Poll while another request holds the build lock, until its build for these versions
    replaces ``replacing``.

    None when the lock is released without such a build (the holder built for other
    versions: the user's follows changed in between, or it failed) or at ``deadline``
    (``time.monotonic()``): the caller then takes the lock or builds itself, instead of
    waiting out the deadline for a build that nobody is making.
    """
    delay = 0.005
    while time.monotonic() < deadline:
        pipe = r.pipeline(transaction=False)
        pipe.lrange(FEED_KEY % user_id, 0, count)
        pipe.exists(LOCK_KEY % user_id)
        raw, locked = pipe.execute()
        found = _matching(raw, wanted, replacing)
        if found is not None:
            return found
        if not locked:
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return None


def is_build_for(header: Header | None, wanted: Inputs, replacing: str | None) -> bool:
    """Whether this list is a build for these versions, other than ``replacing``."""
    return header is not None and header.build_id != replacing and header.inputs == wanted


def _matching(
    raw: list[bytes], wanted: Inputs, replacing: str | None
) -> tuple[Header, list[Entry]] | None:
    header, entries = split_first_page(raw)
    if header is not None and is_build_for(header, wanted, replacing):
        return header, entries
    return None
