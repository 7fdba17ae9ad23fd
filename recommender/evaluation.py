"""Offline evaluation on MIND logs: per-impression AUC, MRR and nDCG@k of history-based rankers."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from recommender.metrics import auc_score, impression_metrics, mrr_score, ndcg_score
from recommender.mind import Impression, News
from recommender.offline import (
    RANKERS,
    Corpus,
    LatestRanker,
    MmrRanker,
    OfflineRanker,
    PopularRanker,
    Query,
    RandomRanker,
    RankerFactory,
    TfidfHistoryRanker,
)

__all__ = [
    "DEFAULT_RANKERS",
    "RANKERS",
    "Corpus",
    "LatestRanker",
    "Metrics",
    "MmrRanker",
    "OfflineRanker",
    "PopularRanker",
    "Query",
    "RandomRanker",
    "RankerFactory",
    "TfidfHistoryRanker",
    "auc_score",
    "evaluate",
    "impression_metrics",
    "mrr_score",
    "ndcg_score",
    "score_log",
]

DEFAULT_RANKERS = ("tfidf", "popular", "latest", "mmr", "random")
PROGRESS_MIN_IMPRESSIONS = 1000  # a progress bar only above this many impressions


@dataclass(frozen=True)
class Metrics:
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

    def metrics(self, skipped: int) -> Metrics:
        means = self.sums / self.count if self.count else np.full(4, math.nan)
        auc, mrr, ndcg5, ndcg10 = (float(m) for m in means)
        return Metrics(auc, mrr, ndcg5, ndcg10, self.count, skipped)


# ---------------------------------------------------------------------------------------------
# Replay and evaluation.


def _rankers(corpus: Corpus, names: Sequence[str], seed: int) -> dict[str, OfflineRanker]:
    unknown = [name for name in names if name not in RANKERS]
    if unknown:
        raise ValueError(f"unknown rankers {unknown}; known: {sorted(RANKERS)}")
    return {name: RANKERS[name](corpus, seed) for name in dict.fromkeys(names)}


def _replay(
    corpus: Corpus, rankers: Mapping[str, OfflineRanker], log: Sequence[Impression]
) -> Iterator[tuple[Query, dict[str, NDArray[np.float64]]]]:
    """Score a time-ordered log, feeding each impression back once the clock has passed it."""
    pending: list[Query] = []
    for impression in log:
        if pending and pending[0].impression.time < impression.time:
            for done in pending:
                for ranker in rankers.values():
                    ranker.observe(done)
            pending.clear()
        query = corpus.query(impression)
        yield query, {name: ranker.score(query) for name, ranker in rankers.items()}
        pending.append(query)


def _in_time_order(impressions: Iterable[Impression]) -> list[Impression]:
    return sorted(impressions, key=lambda impression: impression.time)  # stable: file order


def score_log(
    news: Mapping[str, News],
    impressions: Iterable[Impression],
    ranker_names: Sequence[str] = DEFAULT_RANKERS,
    *,
    seed: int = 0,
) -> Iterator[tuple[Impression, dict[str, NDArray[np.float64]]]]:
    """Every impression in time order, with each ranker's candidate scores."""
    log = _in_time_order(impressions)
    corpus = Corpus.build(news, log)
    for query, scores in _replay(corpus, _rankers(corpus, ranker_names, seed), log):
        yield query.impression, scores


Progress = Callable[[int], AbstractContextManager[Callable[[int], None]]]
"""Given the number of impressions, a context yielding ``advance(steps)``: the caller's bar."""


@contextmanager
def _no_progress(_total: int) -> Iterator[Callable[[int], None]]:
    yield lambda _steps: None


def evaluate(
    news: Mapping[str, News],
    impressions: Iterable[Impression],
    ranker_names: Sequence[str] = DEFAULT_RANKERS,
    progress: Progress | None = None,
    *,
    seed: int = 0,
) -> dict[str, Metrics]:
    """Per-impression metrics of each ranker, averaged over the impressions with both classes.

    Impressions are replayed in time order (ties in the given order); rankers only learn from
    impressions strictly earlier than the one they score. A ``progress`` factory (the CLI's
    bar) follows runs of more than ``PROGRESS_MIN_IMPRESSIONS`` impressions.
    """
    log = _in_time_order(impressions)
    corpus = Corpus.build(news, log)
    rankers = _rankers(corpus, ranker_names, seed)
    totals = {name: _Totals() for name in rankers}
    skipped = 0
    show = progress if progress and len(log) > PROGRESS_MIN_IMPRESSIONS else _no_progress
    with show(len(log)) as advance:
        for query, scores in _replay(corpus, rankers, log):
            advance(1)
            clicked = int(query.labels.sum())
            if clicked == 0 or clicked == query.labels.size:
                skipped += 1
                continue
            for name, values in scores.items():
                totals[name].add(impression_metrics(query.labels, values))
    return {name: total.metrics(skipped) for name, total in totals.items()}
