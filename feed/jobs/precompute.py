"""First pages built before the reader asks: after a new model, for the recently active."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from feed.model import versions
from feed.readers import activity
from feed.serving.service import FeedService

# Readers per precompute job: a few seconds of work, so that several workers share one
# precompute, and a newer model stops the jobs still queued at once.
CHUNK = 500
# The page size built: the API's default limit (api/schemas.py), the web page's too. Other
# sizes are hits as well, from the precomputed list, with one more round trip.
PAGE_LIMIT = 20


@dataclass(frozen=True)
class Outcome:
    built: int  # first pages built
    current: int  # readers whose first page was already current
    superseded: int = 0  # readers left out: a newer model was published or asked for meanwhile


def chunks(r: redis.Redis, *, since: float, limit: int) -> list[list[str]]:
    """The readers active since ``since`` (at most ``limit``, most recent first), in jobs."""
    users = activity.recent(r, since, limit)
    return [users[i : i + CHUNK] for i in range(0, len(users), CHUNK)]


def build(
    r: redis.Redis,
    feed: FeedService,
    model_version: int,
    user_ids: Sequence[str],
    fit_waiting: Callable[[], bool] = lambda: False,
) -> Outcome:
    """Build each reader's first page through the feed service, as their next request would,
    so that request is a cache hit; stop once a newer model makes these builds moot, or once
    ``fit_waiting`` says a write asked for one: a worker busy building pages for a model about
    to be replaced would hold that fit back by the rest of the chunk (seconds to tens of
    seconds), and the fit precomputes for its own model."""
    built = fresh = 0
    for done, user_id in enumerate(user_ids):
        if versions.read(r).model != model_version or fit_waiting():
            return Outcome(built, fresh, superseded=len(user_ids) - done)
        if feed.page(user_id, PAGE_LIMIT, warm=True).cache_hit:
            fresh += 1
        else:
            built += 1
    return Outcome(built, fresh)
