"""The ranker protocol, its request and result, and the TF-IDF content ranker."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from recommender.model import CorpusModel

ReasonKind = Literal["follow", "related", "latest", "history"]

# A reader who follows nothing is taken to follow the categories they read most: at most this
# many, each with at least this share of the top category's recency-weighted reads.
IMPLIED_FOLLOWS = 3
IMPLIED_SHARE = 0.25


@dataclass(frozen=True)
class RankRequest:
    followed: tuple[str, ...]
    now: float  # epoch seconds
    size: int
    exclude: frozenset[str] = frozenset()
    # Articles the user clicked or read, with when: (article id, epoch seconds).
    history: tuple[tuple[str, float], ...] = ()
    # Time-decayed (clicks, impressions) per article, for rankers that use popularity.
    popularity: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    # Only these articles may be ranked (offline evaluation scores an impression's candidates);
    # None: the whole model. Exclusions still apply.
    candidates: frozenset[str] | None = None


@dataclass(frozen=True)
class Ranked:
    id: str
    score: float
    reason: ReasonKind
    category: str  # the category the reason names


class Ranker(Protocol):
    """Anything that orders a model's articles for one request (experiments swap these)."""

    @property
    def name(self) -> str: ...

    def rank(self, model: CorpusModel, request: RankRequest) -> list[Ranked]: ...


@dataclass(frozen=True)
class TfidfRanker:
    """Similarity to the user's profile, times an exponential freshness decay.

    The profile is the followed categories' centroids plus the user's reading history (the
    TF-IDF vectors of clicked and read articles, recent ones weighing more, halving every
    ``history_half_life_hours``). Articles from followed categories get ``follow_weight`` on
    top of their similarity. Articles from other categories qualify only when their similarity
    reaches ``related_min_similarity``, and never fill more than ``max_outside_share`` of any
    prefix of the feed while followed articles remain.

    Reading also strengthens the categories read: an article gets up to ``history_weight ×
    follow_weight`` more, in proportion to its categories' share of the recency-weighted reads.
    A reader who follows nothing but has read is treated as following the categories they read
    most (up to ``IMPLIED_FOLLOWS``), so what they read outweighs mere freshness.
    """

    name: str = "tfidf"
    half_life_hours: float = 24.0
    follow_weight: float = 0.5
    related_min_similarity: float = 0.3
    max_outside_share: float = 0.1
    history_weight: float = 1.0
    history_half_life_hours: float = 72.0

    def rank(self, model: CorpusModel, request: RankRequest) -> list[Ranked]:
        if model.size == 0 or request.size <= 0:
            return []
        decay = decay_of(model, request.now, self.half_life_hours)
        allowed = allowed_rows(model, request)
        cols = model.category_index(request.followed)
        read, read_share = self._reading(model, request)
        read_categories = [
            int(c)
            for c in np.argsort(-read_share, kind="stable")[:IMPLIED_FOLLOWS]
            if read_share[c] >= IMPLIED_SHARE
        ]
        inside_reason: ReasonKind = "follow"
        if not cols:
            cols, inside_reason = read_categories, "history"
        if not cols:
            return latest_of(model, decay, allowed, request.size)

        norm = math.sqrt(max(float(model.gram[np.ix_(cols, cols)].sum()), 1e-12))
        similarity = model.sims[:, cols].sum(axis=1) / norm
        if read is not None:
            similarity = similarity + self.history_weight * read
        if read_categories:
            leaning = (model.members * read_share).max(axis=1)
            similarity = similarity + self.history_weight * self.follow_weight * leaning
        followed: NDArray[np.bool_] = np.asarray(model.members[:, cols].any(axis=1))
        score = (similarity + self.follow_weight * followed) * decay
        outside: NDArray[np.bool_] = ~followed & (similarity >= self.related_min_similarity)
        if allowed is not None:
            followed &= allowed
            outside &= allowed
        inside_rows = top_rows(score, followed, request.size)
        # Enough related candidates for their share, or to fill in when followed ones run out.
        wanted_outside = max(
            math.ceil(request.size * self.max_outside_share), request.size - len(inside_rows)
        )
        outside_rows = top_rows(score, outside, wanted_outside)
        rows = self._merge(score, inside_rows, outside_rows, request.size)
        in_followed = model.sims[np.ix_(rows, cols)] * np.where(
            model.members[np.ix_(rows, cols)], 1.0, 0.0
        )
        best_any = model.sims[np.ix_(rows, cols)].argmax(axis=1)
        ranked = []
        for j, row in enumerate(rows):
            if followed[row]:
                category = model.slugs[cols[int(in_followed[j].argmax())]]
                ranked.append(
                    Ranked(str(model.ids[row]), float(score[row]), inside_reason, category)
                )
            else:
                category = model.slugs[cols[int(best_any[j])]]
                ranked.append(Ranked(str(model.ids[row]), float(score[row]), "related", category))
        return ranked

    def _reading(
        self, model: CorpusModel, request: RankRequest
    ) -> tuple[NDArray[np.float64] | None, NDArray[np.float32]]:
        """Cosine of every article to the recency-weighted sum of the history's vectors, and
        each category's recency-weighted share of the reads (the most read is 1)."""
        rows, weights = [], []
        for article_id, when in request.history:
            row = model.row_of.get(article_id)
            if row is not None:
                rows.append(row)
                age_hours = max(request.now - when, 0.0) / 3600.0
                weights.append(2.0 ** (-age_hours / self.history_half_life_hours))
        share = np.zeros(len(model.slugs), dtype=np.float32)
        if not rows:
            return None, share
        weight = np.array(weights, dtype=np.float32)
        per_category = weight @ model.members[rows].astype(np.float32)
        share = per_category / max(float(per_category.max()), 1e-12)
        if model.vectors.shape[1] == 0:
            return None, share
        profile = np.asarray(model.vectors[rows].T @ weight).ravel()
        norm = float(np.linalg.norm(profile))
        if norm == 0.0:
            return None, share
        result: NDArray[np.float64] = np.asarray(model.vectors @ (profile / norm), np.float64)
        return result, share

    def _merge(
        self, score: NDArray[np.float64], inside: list[int], outside: list[int], size: int
    ) -> list[int]:
        """Interleave by score while any prefix keeps outside articles within their share."""
        rows: list[int] = []
        i = o = 0
        while len(rows) < size and (i < len(inside) or o < len(outside)):
            quota = math.floor(self.max_outside_share * (len(rows) + 1))
            outside_ok = o < len(outside) and (o < quota or i >= len(inside))
            if outside_ok and (i >= len(inside) or score[outside[o]] > score[inside[i]]):
                rows.append(outside[o])
                o += 1
            elif i < len(inside):
                rows.append(inside[i])
                i += 1
            else:
                break
        return rows


def decay_of(model: CorpusModel, now: float, half_life_hours: float) -> NDArray[np.float64]:
    """Freshness of every article: 1 when just published, halving every half-life."""
    age_hours = np.maximum(now - model.published, 0.0) / 3600.0
    result: NDArray[np.float64] = np.exp2(-age_hours / half_life_hours)
    return result


def primary_category(model: CorpusModel, row: int) -> str:
    return model.slugs[int(model.members[row].argmax())]


def allowed_rows(model: CorpusModel, request: RankRequest) -> NDArray[np.bool_] | None:
    """The rows a request may rank (None: every row): its candidates, less its exclusions."""
    excluded = [model.row_of[i] for i in request.exclude if i in model.row_of]
    if request.candidates is None and not excluded:
        return None
    if request.candidates is None:
        allowed = np.ones(model.size, dtype=np.bool_)
    else:
        allowed = np.zeros(model.size, dtype=np.bool_)
        allowed[[model.row_of[i] for i in request.candidates if i in model.row_of]] = True
    allowed[excluded] = False
    return allowed


def top_rows(score: NDArray[np.float64], mask: NDArray[np.bool_], k: int) -> list[int]:
    """Row indices of the ``k`` best scores among ``mask``, best first."""
    rows = np.flatnonzero(mask)
    if k <= 0 or rows.size == 0:
        return []
    if rows.size > k:
        rows = rows[np.argpartition(-score[rows], k - 1)[:k]]
    return [int(r) for r in rows[np.argsort(-score[rows], kind="stable")]]


def latest_of(
    model: CorpusModel,
    decay: NDArray[np.float64],
    allowed: NDArray[np.bool_] | None,
    size: int,
) -> list[Ranked]:
    """Newest first across all categories: the feed of someone who follows nothing yet."""
    mask = np.ones(model.size, dtype=np.bool_) if allowed is None else allowed
    return [
        Ranked(str(model.ids[row]), float(decay[row]), "latest", primary_category(model, row))
        for row in top_rows(model.published, mask, size)
    ]
