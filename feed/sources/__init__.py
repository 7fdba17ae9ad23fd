"""RSS/Atom sources: their settings and poll state in Redis, and polling them into the corpus.

A source is keyed by a digest of its canonical feed URL. Its settings (written by admins) and
its poll state (written by polls) are stored apart, so a poll never overwrites an edit.
:func:`poll_due` is what a worker calls on a timer; :func:`poll` polls one source now.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import redis

from config import Settings
from feed.corpus import articles
from feed.corpus.articles import Article, UpsertResult
from feed.corpus.urls import canonical_url
from feed.exceptions import FeedError, SourceConflict, SourceNotFound
from feed.sources import rss
from feed.sources.rss import FetchError, FetchOptions
from feed.storage import locks

log = logging.getLogger(__name__)

SOURCES_KEY = "nf:{sources}"  # hash source id -> JSON settings (url, categories, interval...)
STATE_KEY = "nf:{sources}:state"  # hash source id -> JSON poll state (etag, failures, errors...)
DUE_KEY = "nf:{sources}:due"  # zset enabled source id -> next poll (epoch seconds)
POLL_LOCK_KEY = "nf:source:%s:polling"  # held while one process polls the source

DEFAULT_INTERVAL_SECONDS = 900
MIN_INTERVAL_SECONDS = 60
MAX_INTERVAL_SECONDS = 86_400
MAX_BACKOFF_SECONDS = 86_400  # a failing source is retried at least once a day
MAX_STORED_ERRORS = 20  # item errors kept on the source from its last poll
STATE_RETRIES = 5

Upsert = Callable[[Sequence[tuple[int, Article]]], UpsertResult]


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


@dataclass
class PollOutcome:
    source_id: str
    status: str  # ok, not_modified, error, busy (another process is polling it)
    http_status: int | None = None
    entries: int = 0
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    duplicates: int = 0  # items whose URL another article already has
    errors: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    next_poll_at: float | None = None


def source_id(url: str) -> str:
    return hashlib.sha1(canonical_url(url).encode()).hexdigest()[:12]


def user_agent(version: str, contact: str) -> str:
    return f"newsfeed/{version} (+{contact})" if contact else f"newsfeed/{version}"


def fetch_options(settings: Settings) -> FetchOptions:
    """How the poller fetches: timeout, size limit, and a user agent naming this version."""
    return FetchOptions(
        timeout=settings.poll_timeout_seconds,
        max_bytes=settings.poll_max_bytes,
        user_agent=user_agent(_version(), settings.poll_contact),
    )


def _version() -> str:
    try:
        return metadata.version("newsfeed")
    except metadata.PackageNotFoundError:
        return "dev"


def create(
    r: redis.Redis,
    url: str,
    categories: Sequence[str],
    poll_interval_seconds: int = DEFAULT_INTERVAL_SECONDS,
    enabled: bool = True,
    category_map: Mapping[str, str] | None = None,
    now: float | None = None,
) -> Source:
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


def poll_due(
    r: redis.Redis,
    options: FetchOptions,
    upsert: Upsert | None = None,
    now: float | None = None,
) -> list[PollOutcome]:
    """Poll every enabled source whose next poll time has come, once each."""
    outcomes = []
    for sid in due(r, now):
        try:
            outcomes.append(poll(r, sid, options, upsert, now))
        except SourceNotFound:
            continue  # deleted meanwhile
    return outcomes


def poll(
    r: redis.Redis,
    source_id: str,
    options: FetchOptions,
    upsert: Upsert | None = None,
    now: float | None = None,
) -> PollOutcome:
    """Fetch one source now, store its new and changed items, and record the outcome."""
    source = get(r, source_id)
    ttl_ms = int((options.timeout * 3 + 60) * 1000)
    with locks.held(r, POLL_LOCK_KEY % source.id, ttl_ms) as won:
        if not won:
            return PollOutcome(source.id, "busy", next_poll_at=source.state.next_poll_at)
        now = time.time() if now is None else now
        outcome, state = _poll(r, source, options, upsert, now)
        _save_state(r, source, state)
        outcome.next_poll_at = state.next_poll_at
        return outcome


def _poll(
    r: redis.Redis,
    source: Source,
    options: FetchOptions,
    upsert: Upsert | None,
    now: float,
) -> tuple[PollOutcome, SourceState]:
    state = source.state
    try:
        fetched = rss.fetch(source.url, options, state.etag, state.last_modified)
    except FetchError as error:
        return _failed(source, now, f"{error.reason}: {error.message}", error.status)
    if fetched.status == 304:
        outcome = PollOutcome(source.id, "not_modified", http_status=304)
        return outcome, _succeeded(source, now, "not_modified", fetched.etag, fetched.last_modified)

    parsed = rss.parse(
        fetched.body,
        source_id=source.id,
        url=fetched.url or source.url,
        default_categories=source.categories,
        category_map=source.category_map,
        fetched_at=datetime.fromtimestamp(now, UTC),
        content_type=fetched.content_type,
    )
    if not parsed.entries and parsed.bozo:
        return _failed(source, now, f"malformed: {parsed.bozo}", fetched.status)
    if parsed.bozo:
        log.warning(
            "source %s (%s): malformed feed, items kept: %s", source.id, source.url, parsed.bozo
        )

    outcome = PollOutcome(source.id, "ok", http_status=fetched.status, entries=parsed.entries)
    outcome.errors = [e.as_dict() for e in parsed.errors]
    try:
        _store(r, parsed, outcome, upsert or (lambda batch: articles.upsert(r, batch)))
    except FeedError as error:  # e.g. write contention: keep the validators, retry later
        return _failed(source, now, f"store: {error.message}", fetched.status)
    for item in outcome.errors:
        log.warning(
            "source %s (%s): item %s skipped (%s): %s",
            source.id,
            source.url,
            item["index"],
            item["reason"],
            item["message"],
        )
    done = _succeeded(source, now, "ok", fetched.etag, fetched.last_modified)
    return outcome, replace(
        done,
        last_error=f"malformed: {parsed.bozo}" if parsed.bozo else None,
        last_item_errors=tuple(outcome.errors[:MAX_STORED_ERRORS]),
    )


def _store(r: redis.Redis, parsed: rss.Parsed, outcome: PollOutcome, upsert: Upsert) -> None:
    """Upsert the items that are new or changed since the last poll."""
    ids = [a.id for a in parsed.articles]
    old_cards = articles.raw_cards(r, ids)
    batch: list[tuple[int, Article]] = []
    for index, (article, raw) in enumerate(zip(parsed.articles, old_cards, strict=True)):
        if raw is not None:
            old = json.loads(raw)
            if article.id in parsed.undated:  # keep the date it was first seen with
                article = replace(article, published_at=articles.parse_iso(old["published_at"]))
            if old == json.loads(json.dumps(article.card())):
                outcome.unchanged += 1
                continue
        batch.append((index, article))
    if not batch:
        return
    result = upsert(batch)
    outcome.created, outcome.updated = result.created, result.updated
    for rejection in result.rejected:
        if rejection.reason == "duplicate_url":
            outcome.duplicates += 1
        else:
            outcome.errors.append(
                {
                    "index": rejection.index or 0,
                    "reason": rejection.reason,
                    "message": rejection.message,
                    "guid": rejection.id,
                }
            )


def _succeeded(
    source: Source, now: float, status: str, etag: str | None, last_modified: str | None
) -> SourceState:
    return replace(
        source.state,
        etag=etag,
        last_modified=last_modified,
        last_polled_at=now,
        next_poll_at=now + source.poll_interval_seconds,
        consecutive_failures=0,
        last_status=status,
        last_error=None,
        last_item_errors=(),
    )


def _failed(
    source: Source, now: float, message: str, http_status: int | None
) -> tuple[PollOutcome, SourceState]:
    failures = source.state.consecutive_failures + 1
    delay = min(source.poll_interval_seconds * 2**failures, MAX_BACKOFF_SECONDS)
    log.warning(
        "source %s (%s): poll failed (%d in a row, next in %ds): %s",
        source.id,
        source.url,
        failures,
        delay,
        message,
    )
    state = replace(
        source.state,
        last_polled_at=now,
        next_poll_at=now + delay,
        consecutive_failures=failures,
        last_status="error",
        last_error=message[:1000],
        last_item_errors=(),
    )
    return PollOutcome(source.id, "error", http_status=http_status, error=message[:1000]), state


def _save_state(r: redis.Redis, source: Source, state: SourceState) -> None:
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
