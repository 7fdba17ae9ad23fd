"""Work an operator asks for now (the console's "reindex now"), done by whoever fits models
in the configured mode: a worker's job in queue mode, this process's keeper in thread mode."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import redis

from feed.jobs import enqueue_reindex
from feed.model.keeper import ModelKeeper

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReindexRequest:
    mode: str  # "queue" or "thread"
    job_id: str | None  # the queued job (queue mode)


def reindex_now(mode: str, keeper: ModelKeeper, queue_redis: redis.Redis | None) -> ReindexRequest:
    """Fit and publish a model now, even when the model covers the corpus (the live window
    moves with the clock). Never waits for the fit: it takes seconds to minutes."""
    if mode == "queue":
        if queue_redis is None:
            raise ValueError("queue mode needs the queue's connection")
        job = enqueue_reindex(queue_redis, force=True)
        log.info("reindex requested: job %s", job.id)
        return ReindexRequest(mode, job.id)
    threading.Thread(target=_refit, args=(keeper,), name="manual-reindex", daemon=True).start()
    return ReindexRequest(mode, None)


def _refit(keeper: ModelKeeper) -> None:
    try:
        if not keeper.refit():
            log.info("reindex requested: another process is fitting; it publishes the model")
    except Exception:  # a thread's exception would only reach stderr
        log.exception("requested reindex failed")
