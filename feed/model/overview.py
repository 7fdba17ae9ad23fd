"""What operators see of the model that ranks feeds: its version, age, size and lag behind
the corpus, and the learned ranker's state (the console's model view; /readyz says less)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis

from feed.corpus import articles
from feed.model import lag as model_lag
from feed.model import learning, versions
from feed.model.keeper import ModelKeeper


@dataclass(frozen=True)
class ModelOverview:
    corpus_version: int
    articles: int  # in the corpus now
    model_version: int  # 0: no model fitted yet
    model_corpus_version: int | None  # the corpus version the model was fitted on
    model_articles: int | None
    fitted_at: float | None  # epoch seconds
    age_seconds: float | None  # since the fit
    lag_versions: int  # corpus versions whose writes feeds rank without
    lag_seconds: float  # for how long (0: none)
    learned: dict[str, Any]  # feed.model.learning.status


def describe(r: redis.Redis, keeper: ModelKeeper, now: float | None = None) -> ModelOverview:
    now = time.time() if now is None else now
    current = versions.read(r)
    count = articles.count(r)
    learned = learning.status(r)
    if current.model == 0:
        return ModelOverview(
            current.corpus, count, 0, None, None, None, None, current.corpus, 0.0, learned
        )
    meta = keeper.model_for(current.model).meta
    lag = model_lag.measure(r, meta, current.corpus, now=now)
    return ModelOverview(
        corpus_version=current.corpus,
        articles=count,
        model_version=meta.version,
        model_corpus_version=meta.corpus_version,
        model_articles=meta.articles,
        fitted_at=meta.fitted_at,
        age_seconds=max(0.0, now - meta.fitted_at),
        lag_versions=lag.versions,
        lag_seconds=lag.seconds,
        learned=learned,
    )
