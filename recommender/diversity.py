"""Maximal marginal relevance: a re-rank that trades a little relevance for variety."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from recommender.model import CorpusModel
from recommender.ranker import Ranked, Ranker, RankRequest

# Candidates re-ranked per slot: the inner ranker's best `size * POOL_FACTOR` articles.
POOL_FACTOR = 3


@dataclass(frozen=True)
class MMRRanker:
    """Wraps any ranker; picks, slot by slot, the candidate maximising
    ``lambda_ × relevance − (1 − lambda_) × max similarity to those already picked``
    (Carbonell & Goldstein 1998), with TF-IDF cosine as the similarity.

    Related (unfollowed) articles keep the inner ranker's cap: they are re-ranked among
    themselves and placed where the inner order allowed them.
    """

    inner: Ranker
    lambda_: float = 0.7

    @property
    def name(self) -> str:
        return f"{self.inner.name}+mmr"

    def rank(self, model: CorpusModel, request: RankRequest) -> list[Ranked]:
        pool = self.inner.rank(model, replace(request, size=request.size * POOL_FACTOR))
        slots = [r.reason == "related" for r in pool[: request.size]]
        inside = self._reorder(model, [r for r in pool if r.reason != "related"])
        outside = self._reorder(model, [r for r in pool if r.reason == "related"])
        merged: list[Ranked] = []
        for is_outside in slots:
            source = outside if is_outside and outside else inside or outside
            merged.append(source.pop(0))
        return merged

    def _reorder(self, model: CorpusModel, ranked: list[Ranked]) -> list[Ranked]:
        if len(ranked) <= 2 or model.vectors.shape[1] == 0:
            return ranked
        rows = [model.row_of[r.id] for r in ranked]
        vectors = model.vectors[rows]
        similarity = np.asarray((vectors @ vectors.T).todense())
        top = max(r.score for r in ranked) or 1.0
        relevance = np.array([r.score / top for r in ranked])
        chosen: list[int] = []
        closest = np.full(len(ranked), -math.inf)
        remaining = np.ones(len(ranked), dtype=np.bool_)
        for _ in range(len(ranked)):
            penalty = np.where(np.isinf(closest), 0.0, closest)
            gain = self.lambda_ * relevance - (1 - self.lambda_) * penalty
            gain[~remaining] = -math.inf
            pick = int(gain.argmax())
            chosen.append(pick)
            remaining[pick] = False
            closest = np.maximum(closest, similarity[pick])
        return [ranked[i] for i in chosen]
