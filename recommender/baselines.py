"""Simple rankers to compare the content ranker against: newest first, and most clicked."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from recommender.model import CorpusModel
from recommender.ranker import (
    Ranked,
    RankRequest,
    ReasonKind,
    allowed_rows,
    decay_of,
    freshness_parts,
    latest_of,
    top_rows,
)

# Freshness only breaks ties among equal click-through rates: this small, it never outweighs one.
FRESHNESS_TIEBREAK = 1e-6


def _followed_rows(model: CorpusModel, request: RankRequest) -> NDArray[np.bool_] | None:
    """Articles in any followed category (None: follows nothing the model knows)."""
    cols = model.category_index(request.followed)
    if not cols:
        return None
    return np.asarray(model.members[:, cols].any(axis=1))


def _reason_category(model: CorpusModel, request: RankRequest, row: int) -> str:
    """The followed category the article is in, else its first category."""
    followed = set(request.followed)
    own = [model.slugs[c] for c in np.flatnonzero(model.members[row])]
    return next((slug for slug in own if slug in followed), own[0] if own else "")


@dataclass(frozen=True)
class LatestRanker:
    """Reverse chronological within the followed categories (all categories if none)."""

    name: str = "latest"
    half_life_hours: float = 24.0  # only scales the reported score

    def rank(self, model: CorpusModel, request: RankRequest) -> list[Ranked]:
        if model.size == 0 or request.size <= 0:
            return []
        decay = decay_of(model, request.now, self.half_life_hours)
        allowed = allowed_rows(model, request)
        followed = _followed_rows(model, request)
        if followed is None:
            return latest_of(model, decay, allowed, request.size, request.explain)
        mask = followed if allowed is None else followed & allowed
        return [
            Ranked(
                str(model.ids[row]),
                float(decay[row]),
                "follow",
                _reason_category(model, request, row),
                parts=freshness_parts(decay, row) if request.explain else (),
            )
            for row in top_rows(model.published, mask, request.size)
        ]


@dataclass(frozen=True)
class PopularRanker:
    """Smoothed click-through rate over time-decayed counts, within the followed categories.

    CTR = (clicks + prior_strength × prior_ctr) / (impressions + prior_strength): an article
    with few impressions is pulled toward the prior instead of topping the feed after one lucky
    click. The counts arrive already decayed (see feed/readers/popularity.py); freshness breaks ties
    among articles nobody has seen yet.
    """

    name: str = "popular"
    prior_ctr: float = 0.05
    prior_strength: float = 20.0
    half_life_hours: float = 24.0

    def rank(self, model: CorpusModel, request: RankRequest) -> list[Ranked]:
        if model.size == 0 or request.size <= 0:
            return []
        clicks = np.zeros(model.size)
        shown = np.zeros(model.size)
        for article_id, (c, i) in request.popularity.items():
            row = model.row_of.get(article_id)
            if row is not None:
                clicks[row], shown[row] = c, i
        prior = self.prior_strength
        ctr = (clicks + prior * self.prior_ctr) / (shown + prior)
        tiebreak = FRESHNESS_TIEBREAK * decay_of(model, request.now, self.half_life_hours)
        score = ctr + tiebreak
        allowed = allowed_rows(model, request)
        followed = _followed_rows(model, request)
        mask = np.ones(model.size, dtype=np.bool_) if followed is None else followed
        if allowed is not None:
            mask = mask & allowed
        kind: ReasonKind = "latest" if followed is None else "follow"
        return [
            Ranked(
                str(model.ids[row]),
                float(score[row]),
                kind,
                _reason_category(model, request, row),
                parts=(("ctr", float(ctr[row])), ("freshness", float(tiebreak[row])))
                if request.explain
                else (),
                factors=(("clicks", float(clicks[row])), ("impressions", float(shown[row])))
                if request.explain
                else (),
            )
            for row in top_rows(score, mask, request.size)
        ]
