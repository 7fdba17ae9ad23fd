"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from api.errors import error_response
from api.extensions import services
from feed.corpus import articles
from feed.model import versions

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
    return {
        "status": "ready",
        "corpus_version": current.corpus,
        "model_version": loaded.meta.version,
        "model_corpus_version": loaded.meta.corpus_version,
        "model_articles": loaded.meta.articles,
        "articles": articles.count(svc.redis),
    }
