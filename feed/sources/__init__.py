"""RSS/Atom sources: their settings and poll state in Redis (polling them: feed.sources.polling).

A source is keyed by a digest of its canonical feed URL. Its settings (written by admins) and
its poll state (written by polls) are stored apart, so a poll never overwrites an edit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import redis

from feed.corpus.urls import canonical_url
from feed.exceptions import SourceConflict, SourceNotFound
from feed.sources.addresses import Allowlist, refused_literal
from feed.sources.fetch import DEFAULT_PORTS
from feed.storage import locks

log = logging.getLogger(__name__)

SOURCES_KEY = "nf:{sources}"  # hash source id -> JSON settings (url, categories, interval...)
STATE_KEY = "nf:{sources}:state"  # hash source id -> JSON poll state (etag, failures, errors...)
DUE_KEY = "nf:{sources}:due"  # zset enabled source id -> next poll (epoch seconds)

DEFAULT_INTERVAL_SECONDS = 900
MIN_INTERVAL_SECONDS = 60
MAX_INTERVAL_SECONDS = 86_400
STATE_RETRIES = 5


@dataclass(frozen=True)
class SourceState:
    etag: str | None = None
    last_modified: str | None = None
    last_polled_at: float | None = None
    next_poll_at: float | None = None
    consecutive_failures: int = 0
    last_status: str | None = None  # ok, not_modified or error
    last_error: str | None = None  # why the last poll failed, or why the document was malformed
    last_item_errors: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Source:
    id: str
    url: str
    categories: tuple[str, ...]
    poll_interval_seconds: int = DEFAULT_INTERVAL_SECONDS
    enabled: bool = True
    category_map: Mapping[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    state: SourceState = field(default_factory=SourceState)

    def settings(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "categories": list(self.categories),
            "poll_interval_seconds": self.poll_interval_seconds,
            "enabled": self.enabled,
            "category_map": dict(self.category_map),
            "created_at": self.created_at,
        }


class InvalidSourceUrl(ValueError):
    """A URL that is never polled: not http(s), with credentials, or a host never fetched."""


def check_url(url: str, allow: Allowlist | None = None) -> None:
    """Refuse a feed URL up front when it can never be fetched.

    Without ``allow`` only the form is checked (http(s), a host, no credentials); with it, a
    host written as a non-public address (or a cloud metadata name) that the allowlist does
    not admit is refused too. Names are judged when fetched, on what they resolve to then.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:  # a bracketed host that is not IPv6, a port that is not a number
        raise InvalidSourceUrl("not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidSourceUrl("only http and https feeds are polled")
    if parts.username is not None or parts.password is not None:
        raise InvalidSourceUrl("a feed URL must not carry credentials (user:password@)")
    if not parts.hostname:
        raise InvalidSourceUrl("the URL has no host")
    if allow is not None and refused_literal(parts.hostname, port or DEFAULT_PORTS[scheme], allow):
        raise InvalidSourceUrl(
            "address not allowed: the host is not on the public internet "
            "(NEWSFEED_FETCH_ALLOW admits intranet feeds)"
        )


def source_id(url: str) -> str:
    return hashlib.sha1(canonical_url(url).encode()).hexdigest()[:12]


def create(
    r: redis.Redis,
    url: str,
    categories: Sequence[str],
    poll_interval_seconds: int = DEFAULT_INTERVAL_SECONDS,
    enabled: bool = True,
    category_map: Mapping[str, str] | None = None,
    now: float | None = None,
) -> Source:
    check_url(url)
    now = time.time() if now is None else now
    source = Source(
        id=source_id(url),
        url=url.strip(),
        categories=tuple(dict.fromkeys(categories)),
        poll_interval_seconds=poll_interval_seconds,
        enabled=enabled,
        category_map=_normal_map(category_map or {}),
        created_at=now,
        state=SourceState(next_poll_at=now),
    )
    if not r.hsetnx(SOURCES_KEY, source.id, _dump(source.settings())):
        existing = get(r, source.id)
        raise SourceConflict(
            f"this feed is already registered as source {source.id!r}: {existing.url[:200]}",
            source=source.id,
        )
    pipe = r.pipeline(transaction=True)
    pipe.hset(STATE_KEY, source.id, _dump(_state_dict(source.state)))
    if enabled:
        pipe.zadd(DUE_KEY, {source.id: now})
    pipe.execute()
    return source


def get(r: redis.Redis, source_id: str) -> Source:
    raw, state = r.hget(SOURCES_KEY, source_id), r.hget(STATE_KEY, source_id)
    if raw is None:
        raise SourceNotFound(source_id)
    return _load(raw, state)


def list_all(r: redis.Redis) -> list[Source]:
    settings = r.hgetall(SOURCES_KEY)
    states = r.hgetall(STATE_KEY)
    found = [_load(raw, states.get(key)) for key, raw in settings.items()]
    return sorted(found, key=lambda s: (s.created_at, s.id))


def update(r: redis.Redis, source_id: str, changes: Mapping[str, Any]) -> Source:
    """Change categories, poll_interval_seconds, enabled or category_map (not the url)."""
    allowed = {"categories", "poll_interval_seconds", "enabled", "category_map"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"cannot change {sorted(unknown)}")
    source = get(r, source_id)
    values = dict(changes)
    if "categories" in values:
        values["categories"] = tuple(dict.fromkeys(values["categories"]))
    if "category_map" in values:
        values["category_map"] = _normal_map(values["category_map"])
    source = replace(source, **values)
    pipe = r.pipeline(transaction=True)
    pipe.hset(SOURCES_KEY, source.id, _dump(source.settings()))
    if source.enabled:
        pipe.zadd(DUE_KEY, {source.id: source.state.next_poll_at or time.time()})
    else:
        pipe.zrem(DUE_KEY, source.id)
    pipe.execute()
    return source


def delete(r: redis.Redis, source_id: str) -> None:
    """Forget a source; the articles it brought stay in the corpus."""
    pipe = r.pipeline(transaction=True)
    pipe.hdel(SOURCES_KEY, source_id)
    pipe.hdel(STATE_KEY, source_id)
    pipe.zrem(DUE_KEY, source_id)
    if not pipe.execute()[0]:
        raise SourceNotFound(source_id)


def due(r: redis.Redis, now: float | None = None) -> list[str]:
    now = time.time() if now is None else now
    return [i.decode() for i in r.zrangebyscore(DUE_KEY, "-inf", now)]


def save_state(r: redis.Redis, source: Source, state: SourceState) -> None:
    """Record the poll's state, unless the source was deleted meanwhile."""
    for _attempt in range(STATE_RETRIES):
        try:
            with r.pipeline(transaction=True) as pipe:
                pipe.watch(SOURCES_KEY)
                raw = pipe.hget(SOURCES_KEY, source.id)
                if raw is None:
                    pipe.reset()
                    return
                enabled = bool(json.loads(raw).get("enabled", True))
                pipe.multi()
                pipe.hset(STATE_KEY, source.id, _dump(_state_dict(state)))
                if enabled:
                    pipe.zadd(DUE_KEY, {source.id: state.next_poll_at or 0})
                pipe.execute()
                return
        except redis.WatchError as error:
            locks.raise_if_disconnected(error)
            continue
    log.warning("source %s: poll state not saved (too many concurrent edits)", source.id)


def _normal_map(mapping: Mapping[str, str]) -> dict[str, str]:
    return {str(k).strip().lower(): v for k, v in mapping.items() if str(k).strip()}


def _state_dict(state: SourceState) -> dict[str, Any]:
    values = asdict(state)
    values["last_item_errors"] = list(state.last_item_errors)
    return values


def _dump(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))


def _load(raw: bytes, raw_state: bytes | None) -> Source:
    data = json.loads(raw)
    state_data = json.loads(raw_state) if raw_state else {}
    state_data["last_item_errors"] = tuple(state_data.get("last_item_errors") or ())
    return Source(
        id=data["id"],
        url=data["url"],
        categories=tuple(data["categories"]),
        poll_interval_seconds=int(data["poll_interval_seconds"]),
        enabled=bool(data["enabled"]),
        category_map=dict(data.get("category_map") or {}),
        created_at=float(data.get("created_at", 0.0)),
        state=SourceState(**state_data),
    )
