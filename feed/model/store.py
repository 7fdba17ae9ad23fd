"""The fitted model shared by every worker and host: versioned artifacts in Redis."""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from feed.model import versions

SEQ_KEY = "nf:model:seq"
ARTIFACT_KEY = "nf:model:{%d}"  # bytes of recommender.model.CorpusModel
META_KEY = "nf:model:{%d}:meta"  # JSON ModelMeta
REINDEX_LOCK_KEY = "nf:model:reindex-lock"

# A replaced artifact stays readable this long, for workers that are loading it right now.
RETIRED_TTL_SECONDS = 10 * 60
# A reindex holding the lock longer than this is presumed dead and the lock lapses.
REINDEX_LOCK_TTL_MS = 10 * 60 * 1000


@dataclass(frozen=True)
class ModelMeta:
    version: int
    corpus_version: int  # the corpus version read before the fit started
    snapshot_at: float  # epoch at which the fit started reading the corpus
    fitted_at: float
    articles: int


def publish(
    r: redis.Redis,
    artifact: bytes,
    *,
    corpus_version: int,
    snapshot_at: float,
    fitted_at: float,
    articles: int,
) -> ModelMeta:
    """Store an artifact, then point every worker at it.

    The pointer is set only once the artifact and its meta are stored (one transaction in
    the version's slot), so a reader that sees the new version can always load it: each
    request ranks with the old model or the new one, never a mix.
    """
    version = int(r.incr(SEQ_KEY))
    meta = ModelMeta(version, corpus_version, snapshot_at, fitted_at, articles)
    with r.pipeline(transaction=True) as pipe:
        pipe.set(ARTIFACT_KEY % version, artifact)
        pipe.set(META_KEY % version, json.dumps(meta.__dict__))
        pipe.execute()
    previous = versions.set_current_model(r, version)
    if previous is not None:
        # Workers still loading the previous version get a few minutes to finish.
        with r.pipeline(transaction=True) as pipe:
            pipe.expire(ARTIFACT_KEY % previous, RETIRED_TTL_SECONDS)
            pipe.expire(META_KEY % previous, RETIRED_TTL_SECONDS)
            pipe.execute()
    return meta


def load(r: redis.Redis, version: int) -> tuple[ModelMeta, bytes] | None:
    raw_meta, artifact = r.mget(META_KEY % version, ARTIFACT_KEY % version)
    if raw_meta is None or artifact is None:
        return None
    return ModelMeta(**json.loads(raw_meta)), artifact


def current_meta(r: redis.Redis) -> ModelMeta | None:
    version = r.get(versions.MODEL_CURRENT_KEY)
    if version is None:
        return None
    raw = r.get(META_KEY % int(version))
    return ModelMeta(**json.loads(raw)) if raw else None
