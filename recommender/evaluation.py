"""Offline evaluation: a MIND log replayed through the service's rankers, metrics per impression."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from recommender.metrics import impression_metrics
from recommender.mind import Impression, News
from recommender.model import CorpusModel, Doc, fit
from recommender.ranker import Ranked, Ranker, RankRequest, primary_category
from recommender.registry import make_ranker, uses_popularity

__all__ = [
    "DEFAULT_RANKERS",
    "RANDOM",
    "RANKERS",
    "OfflineMetrics",
    "RandomRanker",
    "candidate_scores",
    "evaluate",
    "make_rankers",
    "model_of",
    "score_log",
]

# Evaluated name -> (registry name, parameters): the very rankers experiment variants build.
REGISTRY_RANKERS: dict[str, tuple[str, dict[str, Any]]] = {
    "tfidf": ("tfidf", {}),
    "popular": ("popular", {}),
    "latest": ("latest", {}),
    "mmr": ("tfidf", {"mmr_lambda": 0.7}),
}
RANDOM = "random"  # the baseline, evaluation-only
RANKERS = (*REGISTRY_RANKERS, RANDOM)
DEFAULT_RANKERS = RANKERS
PROGRESS_MIN_IMPRESSIONS = 1000  # a progress bar only above this many impressions

# MIND histories are click ids, oldest first, without times. They get times one hour apart,
# the last an hour before the impression: the order is kept, and against the tfidf ranker's
# history half-life (72 h by default) a typical history of a few dozen clicks keeps its oldest
# within about a factor of two of its newest, so recency counts without reducing a history
# to its last few clicks.
HISTORY_SPACING_SECONDS = 3600.0
# News that never appear in the log get a publish time this long before the first impression:
# old enough to count as stale for any freshness decay, so they never pass for new.
UNSEEN_AGE_SECONDS = 30 * 86400.0
# As the service's default NEWSFEED_POPULARITY_HALF_LIFE_HOURS (config/): the counts the
# popular ranker sees offline decay as they do online (feed/readers/popularity.py).
POPULARITY_HALF_LIFE_HOURS = 24.0


@dataclass(frozen=True)
class OfflineMetrics:
    """Means over the evaluated impressions; ``skipped`` had only clicked or only skipped news."""

    auc: float
    mrr: float
    ndcg5: float
    ndcg10: float
    impressions: int
    skipped: int


class _Totals:
    def __init__(self) -> None:
        self.sums = np.zeros(4)
        self.count = 0

    def add(self, values: tuple[float, float, float, float]) -> None:
        self.sums += values
        self.count += 1

    def metrics(self, skipped: int) -> OfflineMetrics:
        means = self.sums / self.count if self.count else np.full(4, math.nan)
        auc, mrr, ndcg5, ndcg10 = (float(m) for m in means)
        return OfflineMetrics(auc, mrr, ndcg5, ndcg10, self.count, skipped)


@dataclass
class RandomRanker:
    """The baseline: the request's candidates in a seeded random order, all scores distinct."""

    seed: int = 0
    name: str = RANDOM

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def rank(self, model: CorpusModel, request: RankRequest) -> list[Ranked]:
        ids = sorted(request.candidates or ())  # sorted: a set's order varies between runs
        rows = [model.row_of[i] for i in ids if i in model.row_of and i not in request.exclude]
        self._rng.shuffle(rows)
        rows = rows[: request.size]
        return [
            Ranked(str(model.ids[r]), float(len(rows) - k), "latest", primary_category(model, r))
            for k, r in enumerate(rows)
        ]


def make_rankers(names: Sequence[str] = DEFAULT_RANKERS, *, seed: int = 0) -> dict[str, Ranker]:
    """The named rankers, from the registry; ``random`` is the seeded baseline."""
    unknown = [name for name in names if name not in RANKERS]
    if unknown:
        raise ValueError(f"unknown rankers {unknown}; known: {list(RANKERS)}")
    rankers: dict[str, Ranker] = {}
    for name in dict.fromkeys(names):
        if name == RANDOM:
            rankers[name] = RandomRanker(seed)
        else:
            registry_name, params = REGISTRY_RANKERS[name]
            rankers[name] = make_ranker(registry_name, params)
    return rankers


# ---------------------------------------------------------------------------------------------
# The model and the replay.


def _first_seen(log: Sequence[Impression]) -> dict[str, float]:
    """Each news id's first appearance in the log, as a candidate or in a history."""
    seen: dict[str, float] = {}
    for impression in log:
        for news_id in (*impression.history, *impression.candidates):
            if impression.time < seen.get(news_id, math.inf):
                seen[news_id] = impression.time
    return seen


def model_of(news: Mapping[str, News], log: Sequence[Impression]) -> CorpusModel:
    """The model the service would serve for news.tsv's news, published when first seen.

    MIND has no publish times. A candidate's first appearance is never after the impression
    that shows it, so standing in for the publish time it tells a ranker nothing from later.
    """
    seen = _first_seen(log)
    unseen = min((i.time for i in log), default=0.0) - UNSEEN_AGE_SECONDS
    return fit(
        [
            Doc(item.id, f"{item.title} {item.abstract}", (item.category,), seen.get(i, unseen))
            for i, item in news.items()
        ]
    )


class _Popularity:
    """Decayed (clicks, impressions) per news item, as feed.readers.popularity keeps them online."""

    def __init__(self, half_life_hours: float) -> None:
        self._half_life = half_life_hours * 3600.0
        self._counts: dict[str, tuple[float, float, float]] = {}  # id -> clicks, shown, as of

    def observe(self, impression: Impression) -> None:
        now = impression.time
        for news_id, label in zip(impression.candidates, impression.labels, strict=True):
            clicks, shown, since = self._counts.get(news_id, (0.0, 0.0, now))
            decay = 2.0 ** (-(now - since) / self._half_life)
            self._counts[news_id] = (clicks * decay + label, shown * decay + 1.0, now)

    def read(self, news_ids: Iterable[str], now: float) -> dict[str, tuple[float, float]]:
        found = {}
        for news_id in news_ids:
            counts = self._counts.get(news_id)
            if counts is not None:
                clicks, shown, since = counts
                decay = 2.0 ** (-(now - since) / self._half_life)
                found[news_id] = (clicks * decay, shown * decay)
        return found


def _history(impression: Impression) -> tuple[tuple[str, float], ...]:
    n = len(impression.history)
    return tuple(
        (news_id, impression.time - (n - k) * HISTORY_SPACING_SECONDS)
        for k, news_id in enumerate(impression.history)
    )


def candidate_scores(candidates: Sequence[str], ranked: Sequence[Ranked]) -> NDArray[np.float64]:
    """Per candidate, a score whose order is the ranking's, ties where the ranking has them.

    The ranked list is the order; consecutive items with exactly equal scores are one tie
    group. Candidates the ranker did not return (unknown to the model, or left out) come
    last, all tied. Scores are minus the tie group's position: only their order means anything.
    """
    group_of: dict[str, int] = {}
    group, previous = -1, math.nan
    wanted = set(candidates)
    for item in ranked:
        if item.id not in wanted or item.id in group_of:
            continue
        if item.score != previous:  # NaN != NaN: the first item always opens a group
            group += 1
            previous = item.score
        group_of[item.id] = group
    last = group + 1
    return -np.array([group_of.get(c, last) for c in candidates], dtype=np.float64)


def _replay(
    model: CorpusModel, rankers: Mapping[str, Ranker], log: Sequence[Impression]
) -> Iterator[tuple[Impression, dict[str, NDArray[np.float64]]]]:
    """Rank a time-ordered log; popularity counts an impression once the clock has passed it."""
    popularity = _Popularity(POPULARITY_HALF_LIFE_HOURS)
    popular = {name for name, ranker in rankers.items() if uses_popularity(ranker)}
    pending: list[Impression] = []
    for impression in log:
        if pending and pending[0].time < impression.time:
            for done in pending:
                popularity.observe(done)
            pending.clear()
        request = RankRequest(
            followed=(),  # MIND has no follows: the tfidf ranker infers them from the history
            now=impression.time,
            size=len(impression.candidates),
            history=_history(impression),
            candidates=frozenset(impression.candidates),
        )
        with_counts = request
        if popular:
            counts = popularity.read(request.candidates or (), impression.time)
            with_counts = replace(request, popularity=counts)
        scores = {
            name: candidate_scores(
                impression.candidates,
                ranker.rank(model, with_counts if name in popular else request),
            )
            for name, ranker in rankers.items()
        }
        yield impression, scores
        pending.append(impression)


def _in_time_order(impressions: Iterable[Impression]) -> list[Impression]:
    return sorted(impressions, key=lambda impression: impression.time)  # stable: file order


def score_log(
    news: Mapping[str, News],
    impressions: Iterable[Impression],
    rankers: Mapping[str, Ranker] | None = None,
) -> Iterator[tuple[Impression, dict[str, NDArray[np.float64]]]]:
    """Every impression in time order, with each ranker's candidate scores (candidate_scores)."""
    log = _in_time_order(impressions)
    yield from _replay(model_of(news, log), make_rankers() if rankers is None else rankers, log)


Progress = Callable[[int], AbstractContextManager[Callable[[int], None]]]
"""Given the number of impressions, a context yielding ``advance(steps)``: the caller's bar."""


@contextmanager
def _no_progress(_total: int) -> Iterator[Callable[[int], None]]:
    yield lambda _steps: None


def evaluate(
    news: Mapping[str, News],
    impressions: Iterable[Impression],
    rankers: Mapping[str, Ranker] | None = None,
    progress: Progress | None = None,
) -> dict[str, OfflineMetrics]:
    """Per-impression metrics of each ranker (default: make_rankers()), averaged over the
    impressions with both classes.

    Impressions are replayed in time order (ties in the given order) through ``Ranker.rank``
    on one model of news.tsv; the popularity a ranker sees comes only from impressions strictly
    earlier than the one it ranks. A ``progress`` factory (the CLI's bar) follows runs of more
    than ``PROGRESS_MIN_IMPRESSIONS`` impressions.
    """
    log = _in_time_order(impressions)
    chosen = make_rankers() if rankers is None else rankers
    totals = {name: _Totals() for name in chosen}
    skipped = 0
    show = progress if progress and len(log) > PROGRESS_MIN_IMPRESSIONS else _no_progress
    with show(len(log)) as advance:
        for impression, scores in _replay(model_of(news, log), chosen, log):
            advance(1)
            labels = np.asarray(impression.labels, dtype=np.int64)
            clicked = int(labels.sum())
            if clicked == 0 or clicked == labels.size:
                skipped += 1
                continue
            for name, values in scores.items():
                totals[name].add(impression_metrics(labels, values))
    return {name: total.metrics(skipped) for name, total in totals.items()}
