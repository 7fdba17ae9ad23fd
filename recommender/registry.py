"""Rankers by name and parameters, as experiment variants define them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from recommender.baselines import LatestRanker, PopularRanker
from recommender.diversity import MMRRanker
from recommender.learned import LearnedRanker
from recommender.ranker import Ranker
from recommender.tfidf import TfidfRanker

RANKERS: dict[str, type[Any]] = {
    "tfidf": TfidfRanker,
    "latest": LatestRanker,
    "popular": PopularRanker,
    "learned": LearnedRanker,
}
# Any ranker can be wrapped in the diversity re-rank by giving this parameter (0..1).
DIVERSITY_PARAM = "mmr_lambda"
DEFAULT_RANKER = "tfidf"


def parameters(name: str) -> dict[str, Any]:
    """The tunable parameters of a named ranker, with their defaults."""
    cls = _class(name)
    defaults = {f.name: f.default for f in fields(cls) if f.name != "name"}
    return {**defaults, DIVERSITY_PARAM: None}


def make_ranker(name: str, params: Mapping[str, Any] | None = None) -> Ranker:
    """Build a ranker; ValueError names the unknown ranker or the bad parameter."""
    cls = _class(name)
    options = dict(params or {})
    mmr = options.pop(DIVERSITY_PARAM, None)
    allowed = {f.name for f in fields(cls) if f.name != "name"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)} for ranker {name!r}; "
            f"allowed: {', '.join(sorted(allowed | {DIVERSITY_PARAM}))}"
        )
    for key, value in options.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"parameter {key!r} of ranker {name!r} must be a number >= 0")
        if key.endswith("half_life_hours") and value <= 0:
            raise ValueError(f"parameter {key!r} of ranker {name!r} must be > 0")
    ranker: Ranker = cls(**{k: float(v) for k, v in options.items()})
    if mmr is not None:
        if isinstance(mmr, bool) or not isinstance(mmr, int | float) or not 0 <= mmr <= 1:
            raise ValueError(f"{DIVERSITY_PARAM} must be a number between 0 and 1")
        ranker = MMRRanker(ranker, float(mmr))
    return ranker


def uses_popularity(ranker: Ranker) -> bool:
    """Whether the ranker reads ``RankRequest.popularity`` (callers skip reading it if not)."""
    inner = ranker.inner if isinstance(ranker, MMRRanker) else ranker
    return isinstance(inner, PopularRanker | LearnedRanker)


def uses_learned(ranker: Ranker) -> bool:
    """Whether the ranker reads ``RankRequest.learned`` (callers skip loading it if not)."""
    inner = ranker.inner if isinstance(ranker, MMRRanker) else ranker
    return isinstance(inner, LearnedRanker)


def _class(name: str) -> type[Any]:
    try:
        return RANKERS[name]
    except KeyError:
        raise ValueError(
            f"unknown ranker {name!r}; choose from {', '.join(sorted(RANKERS))}"
        ) from None
