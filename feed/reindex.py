"""Fit a new TF-IDF model over the live window of the corpus and publish it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis

from feed import articles, model_store, versions
from feed.model_store import ModelMeta
from recommender.model import CorpusModel, Doc, fit

log = logging.getLogger(__name__)

# Deletions older than this cannot matter to any model still being served.
DELETED_RETENTION_SECONDS = 24 * 3600


@dataclass(frozen=True)
class ReindexResult:
    meta: ModelMeta
    model: CorpusModel
    read_seconds: float
    fit_seconds: float
    store_seconds: float


def reindex(r: redis.Redis, *, live_window_days: float, now: float | None = None) -> ReindexResult:
    started = time.time() if now is None else now
    # Read the version before the articles: the model then covers at least this version, and
    # any write racing with the read bumps the version past it and triggers another fit.
    corpus_version = int(r.get(versions.CORPUS_VERSION_KEY) or 0)
    t0 = time.perf_counter()
    docs = [
        Doc(a.id, a.text, a.categories, a.published_at.timestamp())
        for a in articles.iter_published_since(r, started - live_window_days * 86400)
    ]
    t1 = time.perf_counter()
    model = fit(docs)
    t2 = time.perf_counter()
    previous = model_store.current_meta(r)
    meta = model_store.publish(
        r,
        model.to_bytes(),
        corpus_version=corpus_version,
        snapshot_at=started,
        fitted_at=time.time(),
        articles=model.size,
    )
    articles.forget_deleted_before(r, started - DELETED_RETENTION_SECONDS)
    if previous is not None:
        # Processes may still be extending the replaced model with the changes since its fit
        # (feed/breaking.py): only those both models hold are forgotten.
        versions.trim_changes(r, min(previous.corpus_version, corpus_version))
    t3 = time.perf_counter()
    log.info(
        "model %s fitted on %s articles (corpus v%s) in %.2fs",
        meta.version,
        model.size,
        corpus_version,
        t3 - t0,
    )
    return ReindexResult(meta, model, t1 - t0, t2 - t1, t3 - t2)
