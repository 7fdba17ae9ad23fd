"""Rankers: turn a fitted corpus model and a user's follows into an ordered list of articles."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from recommender.model import CorpusModel

ReasonKind = Literal["follow", "related", "latest"]


@dataclass(frozen=True)
class RankRequest:
    followed: tuple[str, ...]
    now: float  # epoch seconds
    size: int
    exclude: frozenset[str] = frozenset()


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
    """Similarity to the followed categories' centroids, times an exponential freshness decay.

    Articles from followed categories get ``follow_weight`` on top of their similarity.
    Articles from other categories qualify only when their similarity reaches
    ``related_min_similarity``, and never fill more than ``max_outside_share`` of any prefix of
    the feed while followed articles remain.
    """

    name: str = "tfidf"
    half_life_hours: float = 24.0
    follow_weight: float = 0.5
    related_min_similarity: float = 0.3
    max_outside_share: float = 0.1

    def rank(self, model: CorpusModel, request: RankRequest) -> list[Ranked]:
        if model.size == 0 or request.size <= 0:
            return []
        decay = self._decay(model, request.now)
        allowed = _allowed(model, request.exclude)
        cols = model.category_index(request.followed)
        if not cols:
            return _latest(model, decay, allowed, request.size)

        norm = math.sqrt(max(float(model.gram[np.ix_(cols, cols)].sum()), 1e-12))
        similarity = model.sims[:, cols].sum(axis=1) / norm
        followed: NDArray[np.bool_] = np.asarray(model.members[:, cols].any(axis=1))
        score = (similarity + self.follow_weight * followed) * decay
        outside: NDArray[np.bool_] = ~followed & (similarity >= self.related_min_similarity)
        if allowed is not None:
            followed &= allowed
            outside &= allowed
        inside_rows = _top(score, followed, request.size)
        # Enough related candidates for their share, or to fill in when followed ones run out.
        wanted_outside = max(
            math.ceil(request.size * self.max_outside_share), request.size - len(inside_rows)
        )
        outside_rows = _top(score, outside, wanted_outside)
        rows = self._merge(score, inside_rows, outside_rows, request.size)
        in_followed = model.sims[np.ix_(rows, cols)] * np.where(
            model.members[np.ix_(rows, cols)], 1.0, 0.0
        )
        best_any = model.sims[np.ix_(rows, cols)].argmax(axis=1)
        ranked = []
        for j, row in enumerate(rows):
            if followed[row]:
                category = model.slugs[cols[int(in_followed[j].argmax())]]
                ranked.append(Ranked(str(model.ids[row]), float(score[row]), "follow", category))
            else:
                category = model.slugs[cols[int(best_any[j])]]
                ranked.append(Ranked(str(model.ids[row]), float(score[row]), "related", category))
        return ranked

    def _decay(self, model: CorpusModel, now: float) -> NDArray[np.float64]:
        age_hours = np.maximum(now - model.published, 0.0) / 3600.0
        result: NDArray[np.float64] = np.exp2(-age_hours / self.half_life_hours)
        return result

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


def _allowed(model: CorpusModel, exclude: frozenset[str]) -> NDArray[np.bool_] | None:
    rows = [model.row_of[i] for i in exclude if i in model.row_of]
    if not rows:
        return None
    allowed = np.ones(model.size, dtype=np.bool_)
    allowed[rows] = False
    return allowed


def _top(score: NDArray[np.float64], mask: NDArray[np.bool_], k: int) -> list[int]:
    """Row indices of the ``k`` best scores among ``mask``, best first."""
    rows = np.flatnonzero(mask)
    if k <= 0 or rows.size == 0:
        return []
    if rows.size > k:
        rows = rows[np.argpartition(-score[rows], k - 1)[:k]]
    return [int(r) for r in rows[np.argsort(-score[rows], kind="stable")]]


def _latest(
    model: CorpusModel,
    decay: NDArray[np.float64],
    allowed: NDArray[np.bool_] | None,
    size: int,
) -> list[Ranked]:
    """Newest first across all categories: the feed of someone who follows nothing yet."""
    mask = np.ones(model.size, dtype=np.bool_) if allowed is None else allowed
    rows = _top(model.published, mask, size)
    return [
        Ranked(
            str(model.ids[row]),
            float(decay[row]),
            "latest",
            model.slugs[int(model.members[row].argmax())],
        )
        for row in rows
    ]
