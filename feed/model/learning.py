"""Training the learned ranker on the event stream, under a lease, behind a publish gate."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from feed.model import learned_store, versions
from feed.model.keeper import ModelKeeper
from feed.readers import events, subscriptions
from feed.storage import locks
from recommender.clicklog import LoggedEvent, Page, pages_from_events
from recommender.model import CorpusModel
from recommender.ranker import Ranker
from recommender.training import Training, train

log = logging.getLogger(__name__)

# A training holding the lease longer than this is presumed dead (a million impressions take
# well under a minute).
LEASE_TTL_MS = 15 * 60 * 1000
FOLLOWS_BATCH = 1000  # readers whose follows are read per round trip

Advance = Callable[[int], None]


@dataclass(frozen=True)
class Progress:
    """Callbacks a caller (the CLI's bars) hears: stream entries read, pages replayed."""

    events: Advance | None = None
    pages: Callable[[int], Advance | None] = field(default=lambda _total: None)


@dataclass(frozen=True)
class TrainingOutcome:
    """What a training did: ``version`` is the model published, None when it kept the
    previous one (or tfidf's weights, with none published), ``reason`` saying why."""

    won: bool  # False: another process held the lease; nothing was done
    version: int | None
    training: Training | None
    events: int
    reason: str
    serving: int | None  # the learned model serving after this (None: tfidf's weights)

    def as_json(self) -> dict[str, Any]:
        training = self.training
        model = training.model if training else None
        return {
            "at": time.time(),
            "published": self.version,
            "serving": self.serving,
            "reason": self.reason,
            "events": self.events,
            "pages": training.pages if training else 0,
            "impressions": training.impressions if training else 0,
            "clicks": training.clicks if training else 0,
            "validation_pages": training.validation_pages if training else 0,
            "validation_auc": training.validation_auc if training else None,
            "baseline_auc": training.baseline_auc if training else None,
            "seconds": round(training.seconds, 3) if training else None,
            "weights": model.weights() if model else None,
        }


def _event(fields: dict[bytes, bytes]) -> LoggedEvent | None:
    try:
        position = fields.get(b"position")
        feed_id = fields.get(b"feed_id")
        return LoggedEvent(
            fields[b"type"].decode(),
            fields[b"user"].decode(),
            fields[b"article"].decode(),
            float(fields[b"ts"]),
            feed_id.decode() if feed_id else None,
            int(position) if position is not None else None,
        )
    except (KeyError, ValueError):  # not an entry this service wrote: skipped
        return None


def read_pages(r: redis.Redis, progress: Progress | None = None) -> tuple[list[Page], int]:
    """The served pages the whole event stream records (recommender.clicklog), with each
    reader's current follows; and how many stream entries were read."""
    logged = []
    count = 0
    for fields in events.iter_stream(r, progress.events if progress else None):
        count += 1
        event = _event(fields)
        if event is not None:
            logged.append(event)
    users = sorted({event.user for event in logged})
    follows: dict[str, tuple[str, ...]] = {}
    for start in range(0, len(users), FOLLOWS_BATCH):
        chunk = users[start : start + FOLLOWS_BATCH]
        pipe = r.pipeline(transaction=False)
        for user in chunk:
            subscriptions.queue_members(pipe, user)
        for user, members in zip(chunk, pipe.execute(), strict=True):
            follows[user] = tuple(sorted(m.decode() for m in members))
    return pages_from_events(logged, follows), count


def train_and_publish(
    r: redis.Redis,
    model: CorpusModel,
    baseline: Ranker,
    progress: Progress | None = None,
) -> TrainingOutcome:
    """Fit on the whole stream and publish the model if it passes the gate.

    One process trains at a time (a lease); the others answer ``won=False`` at once. The
    gate (recommender.training.train): enough clicks and judged pages, and a validation AUC
    on the latest pages no lower than ``baseline``'s (the served tfidf ranker) on the same
    pages. Otherwise the previous model keeps serving, or tfidf's weights if there is none.
    Every outcome is recorded for /readyz, /metrics and `newsfeed train`.
    """
    token = locks.acquire(r, learned_store.LEASE_KEY, LEASE_TTL_MS)
    if token is None:
        current = learned_store.load(r)
        return TrainingOutcome(
            False, None, None, 0, "another process is training", _version(current)
        )
    try:
        learned_store.set_mark(r, events.entries_added(r))
        pages, count = read_pages(r, progress)
        advance = progress.pages(len(pages)) if progress else None
        meta = {"events": count, "trained_at": time.time(), "articles": model.size}
        training = train(model, pages, baseline=baseline, advance=advance, meta=meta)
        version = None
        if training.publishable and training.model is not None:
            version = learned_store.publish(r, training.model)
            reason = ""
            log.info(
                "learned model %s published: AUC %.4f vs %s %.4f on %s pages",
                version,
                training.validation_auc,
                baseline.name,
                training.baseline_auc,
                training.validation_pages,
            )
        else:
            reason = training.reason
            log.info("learned model not published: %s", reason)
        serving = version if version is not None else _version(learned_store.load(r))
        outcome = TrainingOutcome(True, version, training, count, reason, serving)
        learned_store.record_outcome(r, outcome.as_json())
        return outcome
    finally:
        locks.release(r, learned_store.LEASE_KEY, token)


def status(r: redis.Redis) -> dict[str, Any]:
    """Which learned model serves (None: tfidf's weights), what it was trained on and how it
    was judged, and the latest training's outcome: for /readyz, /metrics and operators."""
    current = learned_store.load(r)
    last = learned_store.last_outcome(r)
    found: dict[str, Any] = {"serving": None, "last_training": last}
    if current is not None:
        version, model = current
        meta = model.meta
        found["serving"] = {
            "version": version,
            **{
                key: meta.get(key)
                for key in (
                    "events",
                    "pages",
                    "impressions",
                    "clicks",
                    "validation_auc",
                    "baseline_auc",
                    "validation_pages",
                    "trained_at",
                    "sklearn",
                )
            },
            "weights": model.weights(),
        }
    return found


def due(r: redis.Redis, *, events_needed: int, every_seconds: float, now: float) -> bool:
    """Whether a scheduled training should run: ``every_seconds`` after the latest one, or
    sooner once ``events_needed`` events arrived since it began (0 turns either off)."""
    last = learned_store.last_outcome(r)
    if every_seconds > 0 and last is not None and now - float(last["at"]) >= every_seconds:
        return True
    return events_needed > 0 and enough_new_events(r, events_needed)


def enough_new_events(r: redis.Redis, events_needed: int) -> bool:
    """Whether the stream took at least ``events_needed`` entries since the latest training
    began (every entry counts when none has run)."""
    marked = learned_store.mark(r)
    return events.entries_added(r) - (marked or 0) >= events_needed


def serving_model(r: redis.Redis, live_window_days: float) -> CorpusModel:
    """The TF-IDF model feeds rank with now, with the articles written since its fit
    (ServiceUnavailable when none is fitted yet)."""
    keeper = ModelKeeper(
        r, live_window_days=live_window_days, poll_seconds=3600.0, auto_reindex=False
    )
    try:
        current = versions.read(r)
        return keeper.model_at(current.model, current.corpus).model
    finally:
        keeper.stop()


def _version(found: tuple[int, Any] | None) -> int | None:
    return None if found is None else found[0]
