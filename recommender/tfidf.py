"""The TF-IDF content ranker: followed categories, the reader's reading, freshness, floors."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from recommender.model import CorpusModel
from recommender.profile import Reading, reading_of
from recommender.ranker import (
    Ranked,
    RankRequest,
    ReasonKind,
    allowed_rows,
    decay_of,
    latest_of,
    merge_within_share,
    top_rows,
)

# A reader who follows nothing is taken to follow the categories they read most: at most this
# many, each with at least this share of the top category's recency-weighted reads.
IMPLIED_FOLLOWS = 3
IMPLIED_SHARE = 0.25
# Closeness to the reading profile is measured from the median eligible article (0) to the
# REFERENCE_RANK-th closest (1), or the closest tenth of a few candidates: cosines of headlines
# run 0.05-0.2 on one corpus and 0.3-0.6 on another, so only their spread among the candidates
# says which articles are "like what they read".
REFERENCE_RANK = 10
REFERENCE_SHARE = 0.1
# What a reader's reading pulls up stays fresh this many times longer than the feed's half-life:
# a story on their topic from yesterday still beats a fresh one on nothing they read.
HISTORY_STRETCH = 3.0
# The first page that every followed category keeps a place in (most clients ask for 20).
FLOOR_WINDOW = 20


@dataclass(frozen=True)
class _Pool:
    """The rows a request ranks: the whole model, or an offline impression's candidates."""

    rows: NDArray[np.intp] | None  # None: every row of the model, in order
    allowed: NDArray[np.bool_] | None  # None: every pooled row is allowed

    @staticmethod
    def of(model: CorpusModel, request: RankRequest) -> _Pool:
        allowed = allowed_rows(model, request)
        if request.candidates is None or allowed is None:
            return _Pool(None, allowed)
        return _Pool(np.flatnonzero(allowed), None)

    def take(self, array: Any) -> Any:
        return array if self.rows is None else array[self.rows]

    def row(self, index: int) -> int:
        return index if self.rows is None else int(self.rows[index])


@dataclass(frozen=True)
class TfidfRanker:
    """Followed categories and the reader's reading, times an exponential freshness decay.

    An article scores ``(similarity + follow_weight × followed) × freshness + pull ×
    freshness^(1/HISTORY_STRETCH)``:

    - ``similarity`` is its cosine to the followed categories' summed centroids; articles of
      followed categories get ``follow_weight`` on top. Articles from other categories qualify
      only when their similarity reaches ``related_min_similarity``, and never fill more than
      ``max_outside_share`` of any prefix of the feed while followed articles remain.
    - ``pull`` follows the reading history at the level of content, not category: the
      article's closeness to the recency-weighted TF-IDF profile of what the reader clicked and
      read (halving every ``history_half_life_hours``; see recommender.profile), scaled from
      the median candidate (0) to the ``REFERENCE_RANK``-th closest (1), squared and squashed
      by tanh, times ``history_weight``; it grows with the amount of reading (half of it at
      ``history_reads`` recent reads). A reader with no history gets the follow part alone.
    - Every followed category with articles keeps at least ``category_floor`` of the first
      ``FLOOR_WINDOW`` items, however lopsided the reading: the lowest items of better-served
      categories make room for them.

    A reader who follows nothing but has read is treated as following the categories they read
    most (up to ``IMPLIED_FOLLOWS``); one with neither gets the latest articles.
    """

    name: str = "tfidf"
    half_life_hours: float = 24.0
    follow_weight: float = 0.5
    related_min_similarity: float = 0.3
    max_outside_share: float = 0.1
    history_weight: float = 1.5
    history_half_life_hours: float = 72.0
    history_reads: float = 2.0
    category_floor: float = 2.0

    def rank(self, model: CorpusModel, request: RankRequest) -> list[Ranked]:
        if model.size == 0 or request.size <= 0:
            return []
        pool = _Pool.of(model, request)
        published = pool.take(model.published)
        # Ages count from the newest article when it is older than now: an archive (or a feed
        # that stopped publishing) still ranks by relative freshness, where years of decay
        # would underflow every score to a tie, and the follow and reading parts keep their
        # balance. A live corpus has an article from minutes ago: ages are then from now.
        anchor = min(request.now, float(published.max()))
        age_hours = np.maximum(anchor - published, 0.0) / 3600.0
        decay = np.exp2(-age_hours / self.half_life_hours)
        reading = reading_of(model, request.history, request.now, self.history_half_life_hours)
        cols = model.category_index(request.followed)
        inside_reason: ReasonKind = "follow"
        if not cols and reading is not None:
            share = reading.category_share(model)
            ranked_categories = np.argsort(-share, kind="stable")[:IMPLIED_FOLLOWS]
            cols = [int(c) for c in ranked_categories if share[c] >= IMPLIED_SHARE]
            inside_reason = "history"
        if not cols:
            decay_all = decay_of(model, request.now, self.half_life_hours)
            return latest_of(
                model, decay_all, allowed_rows(model, request), request.size, request.explain
            )

        members = pool.take(model.members)[:, cols]
        norm = math.sqrt(max(float(model.gram[np.ix_(cols, cols)].sum()), 1e-12))
        # Cosine to the sum of the followed centroids, as one matrix-vector product.
        per_category = np.zeros(len(model.slugs), dtype=model.sims.dtype)
        per_category[cols] = 1.0 / norm
        similarity = pool.take(model.sims) @ per_category
        followed: NDArray[np.bool_] = np.asarray(members.any(axis=1))
        eligible = followed if pool.allowed is None else followed & pool.allowed
        follow_part = (similarity + self.follow_weight * followed) * decay
        slow_decay = np.exp2(-age_hours / (self.half_life_hours * HISTORY_STRETCH))
        history_part, start = self._history_part(
            model, pool, reading, eligible, follow_part, slow_decay, request.size
        )
        score = follow_part + history_part
        outside: NDArray[np.bool_] = ~followed & (similarity >= self.related_min_similarity)
        if pool.allowed is not None:
            outside &= pool.allowed
        # No row before ``start`` can reach the feed (see _history_part).
        inside_rows = [start + j for j in top_rows(score[start:], eligible[start:], request.size)]
        # Enough related candidates for their share, or to fill in when followed ones run out.
        wanted_outside = max(
            math.ceil(request.size * self.max_outside_share), request.size - len(inside_rows)
        )
        outside_rows = top_rows(score, outside, wanted_outside)
        order = merge_within_share(
            score, inside_rows, outside_rows, request.size, self.max_outside_share
        )
        order = self._floors(order, score, members, eligible)

        # An item its reading moved more than its follows did names the read it resembles.
        driven = [j for j in order if history_part[j] > follow_part[j]]
        nearest = reading.nearest(model, [pool.row(j) for j in driven]) if reading else []
        because = dict(zip(driven, nearest, strict=True))
        rows = order if pool.rows is None else pool.rows[order].tolist()
        sims = model.sims[rows][:, cols]
        best_followed = np.where(members[order], sims, -1.0).argmax(axis=1).tolist()
        best_any = sims.argmax(axis=1).tolist()
        names = [model.slugs[c] for c in cols]
        ranked = []
        for k, (j, article_id, value) in enumerate(
            zip(order, model.ids[rows].tolist(), score[order].tolist(), strict=True)
        ):
            if not followed[j]:
                item = Ranked(article_id, value, "related", names[best_any[k]])
            elif j in because:
                item = Ranked(article_id, value, "read", names[best_followed[k]], because[j])
            else:
                item = Ranked(article_id, value, inside_reason, names[best_followed[k]])
            ranked.append(item)
        if request.explain:
            ranked = [
                replace(
                    item,
                    # The addends of ``score`` above, each from the array that made it.
                    parts=(
                        ("follow_similarity", float(similarity[j] * decay[j])),
                        ("follow_bonus", float(self.follow_weight * followed[j] * decay[j])),
                        ("history", float(history_part[j])),
                    ),
                    factors=(
                        ("similarity", float(similarity[j])),
                        ("freshness", float(decay[j])),
                        ("history_freshness", float(slow_decay[j])),
                        ("outside_follows", float(not followed[j])),
                    ),
                )
                for item, j in zip(ranked, order, strict=True)
            ]
        return ranked

    def _history_part(
        self,
        model: CorpusModel,
        pool: _Pool,
        reading: Reading | None,
        eligible: NDArray[np.bool_],
        follow_part: NDArray[np.float64],
        slow_decay: NDArray[np.float64],
        size: int,
    ) -> tuple[NDArray[np.float64], int]:
        """Each pooled article's pull from the reading history (zeros without one), and the
        first row that can reach the feed's ``size`` best: none before it can, even pulled."""
        result = np.zeros(follow_part.size)
        if reading is None or reading.unit is None:
            return result, 0
        weight = self.history_weight * (1.0 - 2.0 ** (-reading.mass / self.history_reads))
        # Only rows from the first one that could reach the feed with the full pull are scored:
        # rows are in publication order, so this skips the old tail of a large corpus.
        start = 0
        if pool.rows is None and np.count_nonzero(eligible) > size:
            floor = np.partition(follow_part[eligible], -size)[-size]
            start = int(np.argmax(follow_part + weight * slow_decay >= floor))
        closeness = reading.closeness(model, pool.rows, start)
        candidates = closeness[eligible[start:]]
        if candidates.size == 0:
            return result, start
        # Scaled on the candidates that can be shown: 0 at their median, 1 at the reference.
        top = candidates.size - min(REFERENCE_RANK, math.ceil(candidates.size * REFERENCE_SHARE))
        middle = (candidates.size - 1) // 2  # the median, or the lower of two middles
        ordered = np.partition(candidates, (middle, top))
        reference, typical = float(ordered[top]), float(ordered[middle])
        if reference <= typical:
            return result, start
        lift = np.maximum(closeness - typical, 0.0) / (reference - typical)
        # Squared before saturating: the pull falls away fast below the reference, so the
        # articles on the reader's topic stand out from those merely near it.
        result[start:] = weight * np.tanh(lift * lift) * slow_decay[start:]
        return result, start

    def _floors(
        self,
        order: list[int],
        score: NDArray[np.float64],
        members: NDArray[np.bool_],
        eligible: NDArray[np.bool_],
    ) -> list[int]:
        """Give every followed category ``category_floor`` of the first ``FLOOR_WINDOW`` items.

        A short category's best articles take the places of the window's lowest items whose
        categories keep their own floor (related articles first); the displaced items move just
        below the window, in order.
        """
        floor = int(self.category_floor)
        window = order[:FLOOR_WINDOW]
        if floor <= 0 or members.shape[1] < 2 or len(window) < FLOOR_WINDOW:
            return order
        counts = members[window].sum(axis=0)
        displaced: list[int] = []
        for c in np.flatnonzero(counts < floor):
            placed = set(window)
            ranked = top_rows(score, eligible & members[:, c], floor + len(window))
            for promoted in [j for j in ranked if j not in placed][: floor - int(counts[c])]:
                victim = self._victim(window, members, counts, floor)
                if victim is None:
                    break
                window.remove(victim)
                counts -= members[victim]
                displaced.append(victim)
                window.append(promoted)
                counts += members[promoted]
        if not displaced:
            return order
        position = {j: k for k, j in enumerate(order)}
        displaced.sort(key=position.__getitem__)
        kept = set(window) | set(displaced)
        rest = [j for j in order[FLOOR_WINDOW:] if j not in kept]
        return (window + displaced + rest)[: len(order)]

    @staticmethod
    def _victim(
        window: list[int], members: NDArray[np.bool_], counts: NDArray[np.int64], floor: int
    ) -> int | None:
        """The lowest item of the window that no category needs for its floor."""
        for j in reversed(window):
            if not members[j].any():  # a related article
                return j
        for j in reversed(window):
            if bool(np.all(counts[members[j]] > floor)):
                return j
        return None
