"""Offline rankers for MIND logs: the online rankers' ideas, scoring one impression at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from recommender.mind import Impression, News
from recommender.model import make_vectorizer

# The corpus: every news id the log mentions, with TF-IDF rows for those news.tsv describes.


@dataclass(frozen=True)
class Corpus:
    """Every news id of news.tsv and the log, with unit TF-IDF vectors of title + abstract.

    Rows ``0 .. described - 1`` are news.tsv's news; later rows are ids only the behaviors
    mention, with empty vectors. The vectors are kept as the arrays of a CSR matrix, so that
    gathering a few rows costs a few numpy calls whatever the corpus size.
    """

    ids: list[str]
    row_of: dict[str, int]
    described: int
    indptr: NDArray[np.int64]  # (size + 1,): row r's terms are indices[indptr[r]:indptr[r+1]]
    indices: NDArray[np.int64]
    data: NDArray[np.float64]
    category: NDArray[np.int64]  # category index per row, -1 when unknown
    categories: list[str]

    @property
    def size(self) -> int:
        return len(self.ids)

    @staticmethod
    def build(news: Mapping[str, News], impressions: Iterable[Impression] = ()) -> Corpus:
        ids = list(news)
        row_of = {news_id: row for row, news_id in enumerate(ids)}
        described = len(ids)
        for impression in impressions:
            for news_id in (*impression.history, *impression.candidates):
                if news_id not in row_of:
                    row_of[news_id] = len(ids)
                    ids.append(news_id)
        categories = sorted({item.category for item in news.values()})
        index = {name: i for i, name in enumerate(categories)}
        category = np.full(len(ids), -1, dtype=np.int64)
        category[:described] = [index[news[i].category] for i in ids[:described]]
        texts = [f"{news[i].title} {news[i].abstract}" for i in ids[:described]]
        described_indptr, indices, data = _tfidf(texts)
        indptr = np.full(len(ids) + 1, described_indptr[-1], dtype=np.int64)  # empty rows
        indptr[: described + 1] = described_indptr
        return Corpus(ids, row_of, described, indptr, indices, data, category, categories)

    def rows(self, news_ids: Sequence[str]) -> NDArray[np.intp]:
        """Rows of ids already in the corpus (KeyError for others: build with the log)."""
        return np.fromiter((self.row_of[i] for i in news_ids), dtype=np.intp, count=len(news_ids))

    def query(self, impression: Impression) -> Query:
        return Query(
            impression,
            self.rows(impression.candidates),
            self.rows(impression.history),
            np.asarray(impression.labels, dtype=np.int64),
        )

    def vectors(self, rows: NDArray[np.intp]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """The rows' TF-IDF vectors as ``(terms, dense)``: sorted term ids, and one row of
        ``dense`` per requested row over just those terms."""
        starts = self.indptr[rows]
        lengths = self.indptr[rows + 1] - starts
        total = int(lengths.sum())
        owner = np.repeat(np.arange(rows.size), lengths)
        # Position of every stored entry: its row's start plus its rank within the row.
        position = np.arange(total) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        terms, column = np.unique(self.indices[position], return_inverse=True)
        dense = np.zeros((rows.size, terms.size))
        dense[owner, column] = self.data[position]
        return terms, dense


def _tfidf(
    texts: list[str],
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """CSR arrays (indptr, indices, data) of unit TF-IDF rows, vectorised with the settings of
    recommender.model."""
    n = len(texts)
    try:
        matrix = make_vectorizer(n).fit_transform(texts)
    except ValueError:  # no news, or every text empty or stop words only: all rows empty
        return np.zeros(n + 1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    return (
        np.asarray(matrix.indptr, dtype=np.int64),
        np.asarray(matrix.indices, dtype=np.int64),
        np.asarray(matrix.data, dtype=np.float64),
    )


@dataclass(frozen=True)
class Query:
    """One impression with its news ids resolved to corpus rows."""

    impression: Impression
    candidates: NDArray[np.intp]
    history: NDArray[np.intp]
    labels: NDArray[np.int64]


# ---------------------------------------------------------------------------------------------
# Offline rankers. Impressions are replayed in time order: ``score`` sees one impression, and
# ``observe`` is called only once the log has moved strictly past that impression's time, so
# a ranker never learns from its own impression, a simultaneous one or a later one.


class OfflineRanker(Protocol):
    def score(self, query: Query) -> NDArray[np.float64]:
        """One score per candidate, higher first."""
        ...

    def observe(self, query: Query) -> None:
        """Learn from an impression strictly earlier than any scored from now on."""
        ...


RankerFactory = Callable[[Corpus, int], OfflineRanker]  # (corpus, seed) -> ranker


class LatestRanker:
    """Newest first. MIND has no publish times, so a news item's first appearance in the log
    (as a candidate or in a history) stands in for it: a candidate new to the log is "now"."""

    def __init__(self, corpus: Corpus, seed: int = 0) -> None:
        self.first_seen = np.full(corpus.size, np.inf)

    def score(self, query: Query) -> NDArray[np.float64]:
        result: NDArray[np.float64] = np.minimum(
            self.first_seen[query.candidates], query.impression.time
        )
        return result

    def observe(self, query: Query) -> None:
        rows = np.concatenate([query.candidates, query.history])
        np.minimum.at(self.first_seen, rows, query.impression.time)


class TfidfHistoryRanker:
    """The online TF-IDF ranker with the click history in place of follows.

    The profile is the recency-weighted mean of the history's TF-IDF vectors: the i-th click
    from the end weighs ``0.5 ** (i / half_life_clicks)``. A candidate scores its cosine to the
    profile, plus ``follow_weight`` when its category is among the user's ``top_categories``
    most clicked ones (ties by category name), as followed categories do online. A user
    without a known history gets the latest ranker's order, as an online user without follows
    gets the latest articles.
    """

    def __init__(
        self,
        corpus: Corpus,
        seed: int = 0,
        *,
        half_life_clicks: float = 10.0,
        follow_weight: float = 0.5,
        top_categories: int = 3,
    ) -> None:
        if half_life_clicks <= 0:
            raise ValueError("half_life_clicks must be positive")
        self.corpus = corpus
        self.half_life_clicks = half_life_clicks
        self.follow_weight = follow_weight
        self.top_categories = top_categories
        self.latest = LatestRanker(corpus, seed)

    def relevance(self, query: Query) -> tuple[NDArray[np.float64], bool]:
        """Scores, and whether they are personal (False: the latest-first fallback)."""
        corpus = self.corpus
        history = query.history
        age = np.arange(history.size - 1, -1, -1)  # 0 for the latest click
        terms, vectors = corpus.vectors(history)
        profile = np.exp2(-age / self.half_life_clicks) @ vectors
        norm = float(np.linalg.norm(profile))
        if norm == 0.0:  # no history, or none of it in news.tsv (or all of it stop words)
            return self.latest.score(query), False
        similarity = self._cosine(query.candidates, terms, profile / norm)
        clicked = corpus.category[history]
        counts = np.bincount(clicked[clicked >= 0], minlength=len(corpus.categories))
        top = np.argsort(-counts, kind="stable")[: self.top_categories]
        followed = np.isin(corpus.category[query.candidates], top[counts[top] > 0])
        result: NDArray[np.float64] = similarity + self.follow_weight * followed
        return result, True

    def _cosine(
        self, candidates: NDArray[np.intp], terms: NDArray[np.int64], unit: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """Cosine of each candidate to the unit profile ``unit`` over the sorted ``terms``."""
        found, vectors = self.corpus.vectors(candidates)
        at = np.minimum(np.searchsorted(terms, found), terms.size - 1)  # terms is not empty
        shared = np.where(terms[at] == found, unit[at], 0.0)
        result: NDArray[np.float64] = vectors @ shared
        return result

    def score(self, query: Query) -> NDArray[np.float64]:
        return self.relevance(query)[0]

    def observe(self, query: Query) -> None:
        self.latest.observe(query)


class PopularRanker:
    """recommender.baselines.PopularRanker on the log so far: a smoothed, decayed CTR.

    Per news item, clicks and impressions from earlier impressions decay by half every
    ``half_life_hours``; a candidate scores ``(clicks + prior_strength * prior_ctr) /
    (shown + prior_strength)``, so one lucky click does not top the list, and freshness (since
    the item's first appearance in the log) breaks ties among items nobody has seen yet.
    """

    def __init__(
        self,
        corpus: Corpus,
        seed: int = 0,
        *,
        prior_ctr: float = 0.05,
        prior_strength: float = 20.0,
        half_life_hours: float = 24.0,
    ) -> None:
        if half_life_hours <= 0 or prior_strength <= 0:
            raise ValueError("half_life_hours and prior_strength must be positive")
        self.prior_ctr = prior_ctr
        self.prior_strength = prior_strength
        self.half_life_hours = half_life_hours
        self.clicks = np.zeros(corpus.size)
        self.shown = np.zeros(corpus.size)
        self.stamp = np.zeros(corpus.size)  # when clicks/shown were last brought up to date
        self.latest = LatestRanker(corpus, seed)

    def _decay(self, since: NDArray[np.float64], now: float) -> NDArray[np.float64]:
        result: NDArray[np.float64] = np.exp2(-(now - since) / (3600.0 * self.half_life_hours))
        return result

    def score(self, query: Query) -> NDArray[np.float64]:
        now = query.impression.time
        rows = query.candidates
        decay = self._decay(self.stamp[rows], now)
        prior = self.prior_strength
        ctr = (self.clicks[rows] * decay + prior * self.prior_ctr) / (
            self.shown[rows] * decay + prior
        )
        freshness = self._decay(self.latest.score(query), now)
        result: NDArray[np.float64] = ctr + 1e-6 * freshness
        return result

    def observe(self, query: Query) -> None:
        now = query.impression.time
        rows, inverse = np.unique(query.candidates, return_inverse=True)
        decay = self._decay(self.stamp[rows], now)
        clicks = np.bincount(inverse, weights=query.labels, minlength=rows.size)
        self.clicks[rows] = self.clicks[rows] * decay + clicks
        self.shown[rows] = self.shown[rows] * decay + np.bincount(inverse, minlength=rows.size)
        self.stamp[rows] = now
        self.latest.observe(query)


class MmrRanker:
    """Maximal marginal relevance over the TF-IDF ranker: a diversity re-rank.

    Greedily picks the candidate maximising ``lambda_ * relevance - (1 - lambda_) * max sim``
    to those already picked (TF-IDF cosine); the score is ``n - position`` in that order.
    Without a personal profile the fallback order is kept as is.
    """

    def __init__(
        self,
        corpus: Corpus,
        seed: int = 0,
        *,
        lambda_: float = 0.7,
        half_life_clicks: float = 10.0,
        follow_weight: float = 0.5,
        top_categories: int = 3,
    ) -> None:
        if not 0.0 <= lambda_ <= 1.0:
            raise ValueError("lambda_ must lie in [0, 1]")
        self.corpus = corpus
        self.lambda_ = lambda_
        self.tfidf = TfidfHistoryRanker(
            corpus,
            seed,
            half_life_clicks=half_life_clicks,
            follow_weight=follow_weight,
            top_categories=top_categories,
        )

    def score(self, query: Query) -> NDArray[np.float64]:
        relevance, personal = self.tfidf.relevance(query)
        n = relevance.size
        if personal:
            order = _mmr_order(relevance, self._similarity(query.candidates), self.lambda_)
        else:
            order = np.argsort(-relevance, kind="stable")
        scores = np.empty(n)
        scores[order] = np.arange(n, 0, -1, dtype=np.float64)
        return scores

    def _similarity(self, candidates: NDArray[np.intp]) -> NDArray[np.float64]:
        vectors = self.corpus.vectors(candidates)[1]
        result: NDArray[np.float64] = vectors @ vectors.T
        return result

    def observe(self, query: Query) -> None:
        self.tfidf.observe(query)


def _mmr_order(
    relevance: NDArray[np.float64], similarity: NDArray[np.float64], lambda_: float
) -> NDArray[np.intp]:
    n = relevance.size
    order = np.empty(n, dtype=np.intp)
    closest = np.zeros(n)  # max similarity to the candidates picked so far
    picked = np.zeros(n, dtype=np.bool_)
    for position in range(n):
        value = np.where(picked, -np.inf, lambda_ * relevance - (1.0 - lambda_) * closest)
        best = int(np.argmax(value))  # the first of equals: candidate order breaks ties
        order[position] = best
        picked[best] = True
        closest = np.maximum(closest, similarity[best])
    return order


class RandomRanker:
    """Uniform random scores from a seeded generator: the baseline (AUC 0.5 in expectation)."""

    def __init__(self, corpus: Corpus, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def score(self, query: Query) -> NDArray[np.float64]:
        return self.rng.random(query.candidates.size)

    def observe(self, query: Query) -> None:
        pass


RANKERS: dict[str, RankerFactory] = {
    "tfidf": TfidfHistoryRanker,
    "popular": PopularRanker,
    "latest": LatestRanker,
    "mmr": MmrRanker,
    "random": RandomRanker,
}
