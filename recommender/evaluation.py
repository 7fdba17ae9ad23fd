"""Offline evaluation: a MIND log replayed through the service's rankers, metrics per impression.

With the ``learned`` ranker among them the log is split in time: the learned ranker is fitted
on the earlier part (recommender.training) and every ranker is scored on the later part only,
so the table compares them on the same impressions, none of which the fit saw.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from recommender.clicklog import Page, replay, request_of
from recommender.linear import LinearModel
from recommender.metrics import impression_metrics
from recommender.mind import Impression, News
from recommender.model import CorpusModel, Doc, fit
from recommender.ranker import Ranked, Ranker, RankRequest, candidate_scores, primary_category
from recommender.registry import make_ranker, uses_learned, uses_popularity
from recommender.training import Training, train

__all__ = [
    "DEFAULT_RANKERS",
    "RANDOM",
    "RANKERS",
    "OfflineMetrics",
    "RandomRanker",
    "candidate_scores",
    "evaluate",
    "evaluate_pages",
    "pages_of",
    "split_time",
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
    "learned": ("learned", {}),
}
RANDOM = "random"  # the baseline, evaluation-only
RANKERS = (*REGISTRY_RANKERS, RANDOM)
LEARNED = "learned"
# Without a time split: the learned ranker is asked for by name (it scores the later part).
DEFAULT_RANKERS = tuple(name for name in RANKERS if name != LEARNED)
# The learned ranker is fitted on the earliest half of the log, everyone scored on the rest.
TRAIN_FRACTION = 0.5
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


def _history(impression: Impression) -> tuple[tuple[str, float], ...]:
    n = len(impression.history)
    return tuple(
        (news_id, impression.time - (n - k) * HISTORY_SPACING_SECONDS)
        for k, news_id in enumerate(impression.history)
    )


def pages_of(
    log: Sequence[Impression], follows: Mapping[str, tuple[str, ...]] | None = None
) -> list[Page]:
    """Impressions as served pages: MIND lists candidates in display order, so a candidate's
    index is its position. ``follows`` (user -> categories) gives readers the follows MIND
    lacks; without, the tfidf ranker infers them from the history."""
    followed = follows or {}
    return [
        Page(
            impression.user,
            impression.time,
            impression.candidates,
            tuple(range(len(impression.candidates))),
            impression.labels,
            followed.get(impression.user, ()),
            _history(impression),
        )
        for impression in log
    ]


def _replay(
    model: CorpusModel,
    rankers: Mapping[str, Ranker],
    pages: Sequence[Page],
    *,
    learned: LinearModel | None = None,
    scored_from: float = -math.inf,
) -> Iterator[tuple[Page, dict[str, NDArray[np.float64]]]]:
    """Rank time-ordered pages from ``scored_from`` on; popularity counts every page (earlier
    ones too) once the clock has passed it (recommender.clicklog.replay)."""
    popular = {name for name, ranker in rankers.items() if uses_popularity(ranker)}
    learning = {name for name, ranker in rankers.items() if uses_learned(ranker)}
    for page, counts in replay(pages):
        if page.time < scored_from:
            continue
        # Rankers that do not use popularity are sent none, as the service sends them none.
        request = replace(request_of(page, counts), popularity={})
        with_counts = replace(request, popularity=counts)
        scores = {}
        for name, ranker in rankers.items():
            sent = with_counts if name in popular else request
            if name in learning:
                sent = replace(sent, learned=learned)
            scores[name] = candidate_scores(page.articles, ranker.rank(model, sent))
        yield page, scores


def _in_time_order(impressions: Iterable[Impression]) -> list[Impression]:
    return sorted(impressions, key=lambda impression: impression.time)  # stable: file order


def score_log(
    news: Mapping[str, News],
    impressions: Iterable[Impression],
    rankers: Mapping[str, Ranker] | None = None,
) -> Iterator[tuple[Impression, dict[str, NDArray[np.float64]]]]:
    """Every impression in time order, with each ranker's candidate scores (candidate_scores)."""
    log = _in_time_order(impressions)
    chosen = make_rankers() if rankers is None else rankers
    replayed = _replay(model_of(news, log), chosen, pages_of(log))
    for impression, (_, scores) in zip(log, replayed, strict=True):
        yield impression, scores


def split_time(pages: Sequence[Page] | Sequence[Impression], train_fraction: float) -> float:
    """The time the scored part of a time-ordered log starts: after the first
    ``train_fraction`` of it, moved on past any entry of the same second (none of them is on
    both sides)."""
    if not pages:
        return math.inf
    index = min(max(int(len(pages) * train_fraction), 1), len(pages) - 1)
    moment = pages[index - 1].time
    return next((p.time for p in pages[index:] if p.time > moment), math.inf)


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
    *,
    follows: Mapping[str, tuple[str, ...]] | None = None,
    train_fraction: float = TRAIN_FRACTION,
    trained: Callable[[Training], None] | None = None,
) -> dict[str, OfflineMetrics]:
    """Per-impression metrics of each ranker (default: make_rankers()) on a MIND log, averaged
    over the impressions with both classes.

    Impressions are replayed in time order (ties in the given order) through ``Ranker.rank``
    on one model of news.tsv (evaluate_pages). ``follows`` (user -> categories) gives the
    readers follows, which MIND lacks.
    """
    log = _in_time_order(impressions)
    return evaluate_pages(
        model_of(news, log),
        pages_of(log, follows),
        rankers,
        progress,
        train_fraction=train_fraction,
        trained=trained,
    )


def evaluate_pages(
    model: CorpusModel,
    pages: Sequence[Page],
    rankers: Mapping[str, Ranker] | None = None,
    progress: Progress | None = None,
    *,
    train_fraction: float = TRAIN_FRACTION,
    trained: Callable[[Training], None] | None = None,
) -> dict[str, OfflineMetrics]:
    """Per-page metrics of each ranker on time-ordered served pages (a MIND log's, or the
    service's own event stream's), averaged over the pages with both a click and a skip.

    The popularity a ranker sees comes only from pages strictly earlier than the one it ranks.
    With a learned ranker among them, it is fitted on the first ``train_fraction`` of the
    pages (``trained`` hears the outcome) and every ranker is scored on the rest only. A
    ``progress`` factory (the CLI's bar) follows runs of more than
    ``PROGRESS_MIN_IMPRESSIONS`` scored pages.
    """
    chosen = make_rankers() if rankers is None else rankers
    learned: LinearModel | None = None
    scored_from = -math.inf
    if any(uses_learned(ranker) for ranker in chosen.values()):
        scored_from = split_time(pages, train_fraction)
        training = train(model, [page for page in pages if page.time < scored_from])
        learned = training.model
        if trained is not None:
            trained(training)
    totals = {name: _Totals() for name in chosen}
    skipped = 0
    scored = sum(page.time >= scored_from for page in pages)
    show = progress if progress and scored > PROGRESS_MIN_IMPRESSIONS else _no_progress
    with show(scored) as advance:
        for page, scores in _replay(model, chosen, pages, learned=learned, scored_from=scored_from):
            advance(1)
            labels = np.asarray(page.labels, dtype=np.int64)
            clicked = int(labels.sum())
            if clicked == 0 or clicked == labels.size:
                skipped += 1
                continue
            for name, values in scores.items():
                totals[name].add(impression_metrics(labels, values))
    return {name: total.metrics(skipped) for name, total in totals.items()}
