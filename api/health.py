"""Liveness and readiness probes for load balancers and orchestrators.

/readyz: 503 (the error shape) while this process cannot serve feeds (no model yet, Redis
unreachable); else 200, with ``status`` "ready", or "degraded" when feeds have ranked without
some acknowledged write for longer than ``max_model_lag_seconds`` (docs/operations.md).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from api.errors import error_response
from api.extensions import services
from feed.corpus import articles
from feed.model import lag as model_lag
from feed.model import learning, versions

blp = Blueprint("health", __name__)


@blp.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@blp.get("/readyz")
def readyz() -> Any:
    svc = services()
    current = versions.parse(
        svc.redis.mget(versions.CORPUS_VERSION_KEY, versions.MODEL_CURRENT_KEY)
    )
    if current.model == 0:
        svc.keeper.poke()  # a corpus without a model (fresh start, restored data): fit one
        return error_response(
            503, "unavailable", "no model has been fitted yet", headers={"Retry-After": "2"}
        )
    loaded = svc.keeper.model_for(current.model)
    lag = model_lag.measure(svc.redis, loaded.meta, current.corpus)
    bound = svc.settings.max_model_lag_seconds
    # Still 200: every process ranks with the same model, so a 503 would take them all out of
    # the load balancer and turn stale feeds into no feeds (docs/operations.md).
    degraded = bound > 0 and lag.seconds > bound
    body: dict[str, Any] = {
        "status": "degraded" if degraded else "ready",
        "corpus_version": current.corpus,
        "model_version": loaded.meta.version,
        "model_corpus_version": loaded.meta.corpus_version,
        "model_articles": loaded.meta.articles,
        "model_lag_versions": lag.versions,
        "model_lag_seconds": round(lag.seconds, 1),
        "articles": articles.count(svc.redis),
        # The learned ranker's serving model and latest training (docs/ranking.md).
        "learned": learning.status(svc.redis),
    }
    if degraded:
        body["reason"] = (
            f"feeds have ranked without {lag.versions} corpus versions of writes for "
            f"{lag.seconds:.0f}s (bound {bound:g}s): the model is not being refitted; "
            "see `newsfeed jobs`"
        )
    return body
