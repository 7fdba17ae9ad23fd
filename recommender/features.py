"""Features of (reader, article) pairs: the one function training, serving and evaluation use.

Every feature is absolute, a property of the reader and the article alone, never scaled among
the other candidates: a page of 20 logged candidates (training, offline evaluation) and the
whole corpus (a feed build) give an article the same values, so a model fitted on logged pages
means the same when it ranks 100,000 articles.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from recommender.model import CorpusModel
from recommender.profile import CATEGORY_DISCOUNT, Reading
from recommender.ranker import RankRequest

# Fixed, not settings: a fitted model's coefficients must mean the same on every deployment
# that loads it, whatever its feed's freshness half-life.
FRESHNESS_HALF_LIFE_HOURS = 24.0
# The reading pull fades slower than the follow part (as tfidf.HISTORY_STRETCH has it).
SLOW_HALF_LIFE_HOURS = 72.0
HISTORY_HALF_LIFE_HOURS = 72.0  # recency weight of a read in the profile (recommender.profile)
HISTORY_READS = 2.0  # the reading pull is half grown after this many recent reads
FOLLOW_WEIGHT = 0.5  # the follow bonus inside follow_score, as TfidfRanker's default
# Smoothed CTR: (clicks + PRIOR_STRENGTH × PRIOR_CTR) / (impressions + PRIOR_STRENGTH), so a
# lucky click on an article few saw does not read as a high rate (as PopularRanker has it).
PRIOR_CTR = 0.05
PRIOR_STRENGTH = 20.0

FEATURES: tuple[str, ...] = (
    "follow_similarity",  # cosine to the sum of the followed categories' centroids
    "followed",  # 1 when in a followed category
    "follow_score",  # (follow_similarity + FOLLOW_WEIGHT × followed) × freshness: tfidf's part
    "history_similarity",  # cosine to the reader's recency-weighted reading profile
    "history_closeness",  # that, less most of what the read categories share (the topic)
    "history_pull",  # max(closeness, 0) × how much reading there is × slow freshness
    "category_lean",  # the reader's share of reads in the article's category (0..1)
    "freshness",  # 2^(-age / FRESHNESS_HALF_LIFE_HOURS)
    "age_log",  # log(1 + age in hours)
    "impressions_log",  # log(1 + decayed impressions)
    "clicks_log",  # log(1 + decayed clicks)
    "ctr",  # smoothed click-through rate
)
# Where the article was shown (log(1 + 0-based position)): a training feature only, so the
# other weights are fitted net of position; every served candidate gets SERVING_POSITION.
POSITION_FEATURE = "position"
SERVING_POSITION = 0
# The features that need the reading profile (a sparse product per article), computed last
# and only where they can change the ranking (recommender.learned).
HISTORY_FEATURES = ("history_similarity", "history_closeness", "history_pull")
# What each history feature can reach: they are cosines (or scaled ones) of unit vectors.
HISTORY_BOUNDS = {
    "history_similarity": (0.0, 1.0),
    "history_closeness": (-1.0, 1.0),
    "history_pull": (0.0, 1.0),
}
COLUMN = {name: j for j, name in enumerate(FEATURES)}


def position_value(position: int | NDArray[np.int64]) -> NDArray[np.float64]:
    return np.log1p(np.asarray(position, dtype=np.float64))


@dataclass(frozen=True)
class ReaderState:
    """What a request says about its reader, worked out once per request."""

    cols: list[int]  # the followed categories' columns in the model
    per_category: NDArray[np.float32]  # weights of the centroids in the follow profile
    reading: Reading | None
    lean: NDArray[np.float32] | None  # each category's share of the reads (top one 1)
    growth: float  # 1 - 2^(-reading mass / HISTORY_READS): how much the reading counts

    @classmethod
    def of(cls, model: CorpusModel, request: RankRequest) -> ReaderState:
        cols = model.category_index(request.followed)
        per_category = np.zeros(len(model.slugs), dtype=np.float32)
        if cols:
            norm = math.sqrt(max(float(model.gram[np.ix_(cols, cols)].sum()), 1e-12))
            per_category[cols] = 1.0 / norm
        reading = reading_of(model, request.history, request.now)
        lean = reading.category_share(model) if reading is not None else None
        growth = 1.0 - 2.0 ** (-reading.mass / HISTORY_READS) if reading is not None else 0.0
        return cls(cols, per_category, reading, lean, growth)

    @property
    def has_history(self) -> bool:
        return self.reading is not None and self.reading.unit is not None


def features(
    model: CorpusModel,
    request: RankRequest,
    rows: NDArray[np.intp] | None = None,
    reader: ReaderState | None = None,
) -> NDArray[np.float64]:
    """The (len(rows), len(FEATURES)) feature matrix of these rows (None: every row)."""
    reader = reader or ReaderState.of(model, request)
    matrix = base_features(model, request, reader, rows)
    if reader.has_history:
        history = history_features(model, request, reader, rows)
        for name in HISTORY_FEATURES:
            matrix[:, COLUMN[name]] = history[:, HISTORY_FEATURES.index(name)]
    return matrix


def base_features(
    model: CorpusModel, request: RankRequest, reader: ReaderState, rows: NDArray[np.intp] | None
) -> NDArray[np.float64]:
    """Every feature but the history ones (left 0): a few vector operations per article."""
    count = model.size if rows is None else rows.size
    matrix = np.zeros((count, len(FEATURES)))
    if count == 0:
        return matrix
    published = model.published if rows is None else model.published[rows]
    members = model.members if rows is None else model.members[rows]
    age_hours = np.maximum(request.now - published, 0.0) / 3600.0
    freshness = np.exp2(-age_hours / FRESHNESS_HALF_LIFE_HOURS)
    if reader.cols:
        sims = model.sims if rows is None else model.sims[rows]
        similarity = np.asarray(sims @ reader.per_category, dtype=np.float64)
        followed = members[:, reader.cols].any(axis=1).astype(np.float64)
        matrix[:, COLUMN["follow_similarity"]] = similarity
        matrix[:, COLUMN["followed"]] = followed
        matrix[:, COLUMN["follow_score"]] = (similarity + FOLLOW_WEIGHT * followed) * freshness
    if reader.lean is not None:
        matrix[:, COLUMN["category_lean"]] = (members * reader.lean).max(axis=1)
    matrix[:, COLUMN["freshness"]] = freshness
    matrix[:, COLUMN["age_log"]] = np.log1p(age_hours)
    clicks, shown = _popularity(model, request, rows, count)
    matrix[:, COLUMN["impressions_log"]] = np.log1p(shown)
    matrix[:, COLUMN["clicks_log"]] = np.log1p(clicks)
    matrix[:, COLUMN["ctr"]] = (clicks + PRIOR_STRENGTH * PRIOR_CTR) / (shown + PRIOR_STRENGTH)
    return matrix


def history_features(
    model: CorpusModel, request: RankRequest, reader: ReaderState, rows: NDArray[np.intp] | None
) -> NDArray[np.float64]:
    """The HISTORY_FEATURES columns of these rows (None: every row): zeros without reading."""
    count = model.size if rows is None else rows.size
    result = np.zeros((count, len(HISTORY_FEATURES)))
    reading = reader.reading
    if reading is None or reading.unit is None or count == 0:
        return result
    if rows is None:
        similarity = np.asarray(model.vectors @ reading.unit, dtype=np.float64)
    else:
        owner, columns, values = _entries(model.vectors, rows)
        products = values.astype(np.float64) * reading.unit[columns]
        similarity = np.bincount(owner, weights=products, minlength=count).astype(np.float64)
    closeness = similarity
    if reading.along is not None:
        sims = model.sims if rows is None else model.sims[rows]
        closeness = similarity - sims @ reading.along
    published = model.published if rows is None else model.published[rows]
    age_hours = np.maximum(request.now - published, 0.0) / 3600.0
    slow = np.exp2(-age_hours / SLOW_HALF_LIFE_HOURS)
    result[:, 0] = similarity
    result[:, 1] = closeness
    result[:, 2] = np.maximum(closeness, 0.0) * reader.growth * slow
    return result


def reading_of(
    model: CorpusModel, history: tuple[tuple[str, float], ...], now: float
) -> Reading | None:
    """recommender.profile.reading_of with HISTORY_HALF_LIFE_HOURS, without scipy's indexing:
    training builds one per logged page, and a fancy-indexed sparse product costs a
    millisecond where these few numpy calls cost a tenth of one."""
    row_of = model.row_of
    known = [(row_of[article_id], when) for article_id, when in history if article_id in row_of]
    if not known:
        return None
    found = np.fromiter((row for row, _ in known), dtype=np.intp, count=len(known))
    ages = now - np.fromiter((when for _, when in known), dtype=np.float64, count=len(known))
    hours = np.maximum(ages, 0.0) / 3600.0
    weight = np.exp2(-hours / HISTORY_HALF_LIFE_HOURS).astype(np.float32)
    terms = model.vectors.shape[1]
    if not terms:
        return Reading(found, weight, None)
    owner, columns, values = _entries(model.vectors, found)
    # Summed over the few terms the reads hold: a dense pass over the whole vocabulary (or a
    # BLAS call on it, slow when threads contend) would cost more than everything else here.
    terms_read, slot = np.unique(columns, return_inverse=True)
    summed = np.bincount(slot, weights=values * weight[owner])
    norm = math.sqrt(float(np.square(summed).sum()))
    if norm == 0.0:
        return Reading(found, weight, None)
    unit = np.zeros(terms, dtype=np.float32)
    unit[terms_read] = summed / norm
    # As profile.reading_of: what the profile shares with the read categories' centroids.
    read_categories = model.members[found].any(axis=0)
    along = CATEGORY_DISCOUNT * (weight @ model.sims[found]) / norm
    along = np.where(read_categories, along, 0.0).astype(np.float32)
    return Reading(found, weight, unit, along)


def _entries(
    matrix: sparse.csr_matrix, rows: NDArray[np.intp]
) -> tuple[NDArray[np.intp], NDArray[np.int32], NDArray[np.float32]]:
    """The stored entries of these CSR rows: (index into ``rows``, column, value) each."""
    starts = matrix.indptr[rows]
    lengths = matrix.indptr[rows + 1] - starts
    owner = np.repeat(np.arange(rows.size), lengths)
    # Positions of every entry: each row's start, plus 0..length-1 within the row.
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    where = np.repeat(starts, lengths) + offsets
    return owner, matrix.indices[where], matrix.data[where]


def _popularity(
    model: CorpusModel, request: RankRequest, rows: NDArray[np.intp] | None, count: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Decayed (clicks, impressions) per row, zero for articles nobody has seen."""
    clicks, shown = np.zeros(count), np.zeros(count)
    if not request.popularity:
        return clicks, shown
    if rows is None:
        where, c, i = _popularity_rows(model, request.popularity)
        clicks[where], shown[where] = c, i
        return clicks, shown
    for k, article_id in enumerate(model.ids[rows].tolist()):
        counts = request.popularity.get(article_id)
        if counts is not None:
            clicks[k], shown[k] = counts
    return clicks, shown


# The last counts put in rows, with the model and counts they came from (held, so that their
# ids cannot be reused): feed builds in a process share one popularity read for a few seconds
# (feed.readers.popularity.SNAPSHOT_SECONDS), and looking 5,000 ids up costs more than the
# rest of the features.
PopularityRows = tuple[NDArray[np.intp], NDArray[np.float64], NDArray[np.float64]]
_last_popularity: tuple[object, object, PopularityRows] | None = None


def _popularity_rows(
    model: CorpusModel, popularity: Mapping[str, tuple[float, float]]
) -> PopularityRows:
    global _last_popularity
    last = _last_popularity
    if last is not None and last[0] is model and last[1] is popularity:
        return last[2]
    row_of = model.row_of
    found = [(row_of[a], c, i) for a, (c, i) in popularity.items() if a in row_of]
    arrays = (
        np.array([f[0] for f in found], dtype=np.intp),
        np.array([f[1] for f in found], dtype=np.float64),
        np.array([f[2] for f in found], dtype=np.float64),
    )
    _last_popularity = (model, popularity, arrays)
    return arrays
