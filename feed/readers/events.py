"""Reader events: kept in a capped stream, and fanned out to history and popularity."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import redis

from feed import experiments
from feed.corpus import articles
from feed.readers import history
from feed.readers.popularity import Popularity
from feed.serving import cache

log = logging.getLogger(__name__)

STREAM_KEY = "nf:events"  # the durable log a data team consumes (XREAD / consumer groups)
# Capped (approximately, which lets Redis trim whole nodes cheaply) so memory stays bounded.
STREAM_MAX_LEN = 1_000_000
KINDS = ("impression", "click", "read", "hide")
MAX_BATCH = 500
STREAM_READ_BATCH = 10_000  # entries per XRANGE when a consumer reads the whole stream


@dataclass(frozen=True)
class Event:
    type: str
    user_id: str
    article_id: str
    ts: float  # epoch seconds
    feed_id: str | None = None
    position: int | None = None
    dwell_ms: int | None = None


@dataclass(frozen=True)
class EventRejection:
    index: int
    reason: str
    message: str


@dataclass
class EventResult:
    accepted: int = 0
    rejected: list[EventRejection] = field(default_factory=list)


class EventLog:
    def __init__(self, r: redis.Redis, popularity: Popularity) -> None:
        self._redis = r
        self._popularity = popularity

    def record(
        self, batch: Sequence[tuple[int, Event]], rejected: Sequence[EventRejection], now: float
    ) -> tuple[EventResult, list[Event]]:
        """Keep every event about a stored article; answers the outcome and the kept events.

        The stream, the histories and the cache drops are written in one transaction, so an
        acknowledged event is in all of them or in none.
        """
        result = EventResult(rejected=list(rejected))
        ids = sorted({event.article_id for _, event in batch})
        stored = {
            i
            for i, card in zip(ids, articles.raw_cards(self._redis, ids), strict=True)
            if card is not None
        }
        kept: list[Event] = []
        for index, event in batch:
            if event.article_id in stored:
                kept.append(event)
            else:
                result.rejected.append(
                    EventRejection(
                        index, "unknown_article", f"article {event.article_id!r} does not exist"
                    )
                )
        result.rejected.sort(key=lambda r: r.index)
        if not kept:
            return result, kept
        # The durable log first, then each reader's history in one transaction in the reader's
        # slot (the stream lives in another cluster slot). The batch is acknowledged after both;
        # a client retrying after a failure between them appends its events to the log again,
        # so consumers see every event at least once.
        pipe = self._redis.pipeline(transaction=False)
        for event in kept:
            pipe.xadd(STREAM_KEY, _fields(event), maxlen=STREAM_MAX_LEN, approximate=True)
        pipe.execute()
        by_user: dict[str, list[Event]] = defaultdict(list)
        for event in kept:
            by_user[event.user_id].append(event)
        for user_id, events in by_user.items():
            with self._redis.pipeline(transaction=True) as pipe:
                changed = False
                for event in events:
                    changed |= history.queue_event(
                        pipe, user_id, event.type, event.article_id, event.ts
                    )
                if changed:
                    cache.queue_drop_rendered(pipe, user_id)
                pipe.execute()
        # Counters derived from the stream: recomputable from it if this step is interrupted.
        self._popularity.record([(e.type, e.article_id, e.ts) for e in kept], now)
        running = experiments.parse_running(self._redis.get(experiments.RUNNING_KEY))
        if running:
            experiments.record_events(self._redis, running, [(e.user_id, e.type) for e in kept])
        result.accepted = len(kept)
        return result, kept


def _fields(event: Event) -> dict[str, str]:
    values = {
        "type": event.type,
        "user": event.user_id,
        "article": event.article_id,
        "ts": f"{event.ts:.3f}",
        "feed_id": event.feed_id,
        "position": event.position,
        "dwell_ms": event.dwell_ms,
    }
    return {k: str(v) for k, v in values.items() if v is not None}


def stream_entries(r: redis.Redis, count: int = 100) -> list[dict[str, str]]:
    """The newest entries, newest first (for operators and tests)."""
    return [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _, fields in r.xrevrange(STREAM_KEY, count=count)
    ]


def iter_stream(
    r: redis.Redis, advance: Callable[[int], None] | None = None
) -> Iterator[dict[bytes, bytes]]:
    """Every entry of the stream, oldest first, read in batches (training reads it all);
    ``advance`` hears each batch's size."""
    start = "-"
    while True:
        batch = r.xrange(STREAM_KEY, min=start, count=STREAM_READ_BATCH)
        for _, fields in batch:
            yield fields
        if advance is not None and batch:
            advance(len(batch))
        if len(batch) < STREAM_READ_BATCH:
            return
        start = "(" + batch[-1][0].decode()


def stream_length(r: redis.Redis) -> int:
    return int(r.xlen(STREAM_KEY))


def entries_added(r: redis.Redis) -> int:
    """Entries ever added to the stream (Redis 7's XINFO entries-added; the length on older
    servers, which stops growing once the stream is at its cap)."""
    try:
        info = r.xinfo_stream(STREAM_KEY)
    except redis.ResponseError:  # no stream yet
        return 0
    added = info.get("entries-added", info.get(b"entries-added"))
    return int(added) if added is not None else int(info.get("length", 0))
