"""Fit a new TF-IDF model over the live window of the corpus and publish it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from feed.corpus import articles
from feed.model import store as model_store
from feed.model import versions
from feed.model.store import ModelMeta
from feed.storage import locks
from recommender.model import CorpusModel, Doc, fit

log = logging.getLogger(__name__)

# Deletions older than this cannot matter to any model still being served.
DELETED_RETENTION_SECONDS = 24 * 3600
# How often a fit waiting for the reindex lock looks again.
LOCK_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class ReindexResult:
    meta: ModelMeta
    model: CorpusModel
    read_seconds: float
    fit_seconds: float
    store_seconds: float


def reindex(
    r: redis.Redis,
    *,
    live_window_days: float,
    now: float | None = None,
    lease: locks.Lease | None = None,
) -> ReindexResult:
    """Fit and publish; under ``lease`` (the reindex lock) only while it is still held, else
    LeaseLost: another fit may have taken the lock and published a newer model meanwhile."""
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
    if lease is not None and lease.lost:  # known already: spare storing the artifact
        raise locks.LeaseLost(f"{lease.key} lapsed during the fit")
    previous = model_store.current_meta(r)
    meta = model_store.publish(
        r,
        model.to_bytes(),
        corpus_version=corpus_version,
        snapshot_at=started,
        fitted_at=time.time(),
        articles=model.size,
        lock_token=None if lease is None else lease.token,
    )
    articles.forget_deleted_before(r, started - DELETED_RETENTION_SECONDS)
    if previous is not None:
        # Processes may still be extending the replaced model with the changes since its fit
        # (feed/model/breaking.py): only those both models hold are forgotten.
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


@dataclass(frozen=True)
class LockedFit:
    won: bool  # whether this caller took the reindex lock (False: another fit holds it)
    result: ReindexResult | None  # None: nothing fitted (lock busy, or not ``wanted`` any more)
    # The lock's lease lapsed mid-fit (Redis away longer than its TTL, a stalled process):
    # nothing was published, and the fit is still to be done.
    lost: bool = False


def fit_under_lock(
    r: redis.Redis,
    *,
    live_window_days: float,
    wait_seconds: float = 0.0,
    wanted: Callable[[], bool] | None = None,
    unreleased: Callable[[str], None] | None = None,
) -> LockedFit:
    """The one way to fit: under the reindex lock, so at most one fit runs across all hosts.

    Waits up to ``wait_seconds`` for the lock (0: one try). Once it is held, ``wanted`` says
    whether a fit is still needed (another may have covered the corpus meanwhile). The lock
    is a lease, renewed while the fit runs and checked when it publishes. It is released
    afterwards; when Redis went away meanwhile, ``unreleased`` gets its token for the caller
    to release later (see ``release_lock``), which frees it sooner than its TTL.
    """
    token = _take_lock(r, wait_seconds)
    if token is None:
        return LockedFit(False, None)
    try:
        with locks.Lease(
            r, model_store.REINDEX_LOCK_KEY, token, model_store.REINDEX_LOCK_TTL_MS
        ) as lease:
            fit = wanted is None or wanted()
            result = reindex(r, live_window_days=live_window_days, lease=lease) if fit else None
    except locks.LeaseLost as exc:
        log.warning("fit not published: %s", exc)
        return LockedFit(True, None, lost=True)
    finally:
        release_lock(r, token, unreleased)
    return LockedFit(True, result)


def release_lock(
    r: redis.Redis, token: str, unreleased: Callable[[str], None] | None = None
) -> bool:
    """Release the reindex lock held with ``token``; False (and ``unreleased(token)``) when
    Redis does not answer."""
    try:
        locks.release(r, model_store.REINDEX_LOCK_KEY, token)
    except redis.RedisError as exc:
        log.warning("reindex lock not released (%s)", exc)
        if unreleased is not None:
            unreleased(token)
        return False
    return True


def _take_lock(r: redis.Redis, wait_seconds: float) -> str | None:
    deadline = time.monotonic() + wait_seconds
    while True:
        token = locks.acquire(r, model_store.REINDEX_LOCK_KEY, model_store.REINDEX_LOCK_TTL_MS)
        if token is not None or time.monotonic() >= deadline:
            return token
        time.sleep(LOCK_POLL_SECONDS)
