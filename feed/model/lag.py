"""How far the model that ranks feeds lags the corpus: for /readyz and the metrics.

A model fitted at corpus version v holds every article written up to v; each process then
extends it with the articles written since (feed/model/breaking.py), so it holds the whole
corpus as long as the change log reaches back to v and lists at most ``breaking.MAX_CHANGES``
articles. Past that (a bulk write, and no refit since: workers down, or behind) feeds rank
without the newer writes: those are the lag, in corpus versions, and in seconds since a
reading (a probe, a scrape) first found the model lacking them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from feed.model import breaking, versions
from feed.model.store import ModelMeta

# "<covered>:<epoch>": the served model holding corpus version <covered> at most was first
# found behind the corpus at <epoch>. Shared, so every process and scrape tells the same age.
LAG_KEY = "nf:model:lag"


@dataclass(frozen=True)
class ModelLag:
    corpus: int  # the corpus version now
    covered: int  # the newest corpus version the served model holds every write of
    seconds: float  # how long it has lacked the writes after ``covered`` (0: it lacks none)

    @property
    def versions(self) -> int:
        return max(0, self.corpus - self.covered)


def measure(r: redis.Redis, meta: ModelMeta, corpus: int, *, now: float | None = None) -> ModelLag:
    """The lag of the model ``meta`` describes (the published one) behind corpus version
    ``corpus``; writes to Redis only when it first finds the model behind."""
    now = time.time() if now is None else now
    count, complete = versions.count_changes_since(r, meta.corpus_version)
    extensible = complete and count <= breaking.MAX_CHANGES
    covered = corpus if extensible else min(meta.corpus_version, corpus)
    if covered >= corpus:
        return ModelLag(corpus, covered, 0.0)
    return ModelLag(corpus, covered, max(0.0, now - _behind_since(r, covered, now)))


def _behind_since(r: redis.Redis, covered: int, now: float) -> float:
    raw = r.get(LAG_KEY)
    if raw is not None:
        seen, _, since = raw.decode().partition(":")
        if seen == str(covered):
            return float(since)
    try:
        r.set(LAG_KEY, f"{covered}:{now}")
    except redis.ReadOnlyError:  # a demoted primary serves reads: timed from this reading
        pass
    return now
