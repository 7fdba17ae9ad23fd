"""Polling sources into the corpus: fetch politely, store new and changed items, back off.

:func:`poll_due` is what a worker calls on a timer; :func:`poll` polls one source now.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import redis

from config import Settings, installed_version
from feed.corpus import articles
from feed.corpus.articles import Article, UpsertResult
from feed.exceptions import FeedError, SourceNotFound
from feed.sources import Source, SourceState, due, get, rss, save_state
from feed.sources.addresses import Allowlist
from feed.sources.fetch import FetchError, FetchOptions, fetch
from feed.storage import locks

log = logging.getLogger(__name__)

POLL_LOCK_KEY = "nf:source:polling:%s"  # held while one process polls the source
MAX_BACKOFF_SECONDS = 86_400  # a failing source is retried at least once a day
MAX_STORED_ERRORS = 20  # item errors kept on the source from its last poll

Upsert = Callable[[Sequence[tuple[int, Article]]], UpsertResult]


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


def user_agent(version: str, contact: str) -> str:
    return f"newsfeed/{version} (+{contact})" if contact else f"newsfeed/{version}"


def fetch_options(settings: Settings) -> FetchOptions:
    """How the poller fetches: timeout, size limit, a user agent naming this version, and the
    non-public destinations allowed; ValueError names a malformed NEWSFEED_FETCH_ALLOW entry."""
    try:
        allow = Allowlist.parse(settings.fetch_allow)
    except ValueError as error:
        raise ValueError(f"NEWSFEED_FETCH_ALLOW: {error}") from None
    return FetchOptions(
        timeout=settings.poll_timeout_seconds,
        max_bytes=settings.poll_max_bytes,
        user_agent=user_agent(installed_version(), settings.poll_contact),
        allow=allow,
    )


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
        save_state(r, source, state)
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
        fetched = fetch(source.url, options, state.etag, state.last_modified)
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
