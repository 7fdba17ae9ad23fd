"""The fitted model shared by every worker and host: versioned artifacts in Redis."""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from feed.model import versions
from feed.storage.locks import LeaseLost

SEQ_KEY = "nf:model:seq"
ARTIFACT_KEY = "nf:model:{%d}"  # bytes of recommender.model.CorpusModel
META_KEY = "nf:model:{%d}:meta"  # JSON ModelMeta
# In the slot of the model pointer (versions.MODEL_CURRENT_KEY): a fit publishes only while it
# holds the lock, checked in the script that sets the pointer.
REINDEX_LOCK_KEY = "nf:{corpus}:model:reindex-lock"

# A replaced artifact stays readable this long, for workers that are loading it right now.
RETIRED_TTL_SECONDS = 10 * 60
# The reindex lock is a lease: the fit renews it while it runs (feed.storage.locks.Lease), so
# a fit killed mid-way (kill -9, a lost host) frees it within this time and another redoes it.
REINDEX_LOCK_TTL_MS = 5_000
# Artifacts are read in ranges this large: a connection's reply parser (hiredis) keeps a
# buffer as large as the largest reply it read, so one GET of an artifact would leave every
# web process holding that much more (70 MB at 100k articles, measured by bench/memory.py).
READ_CHUNK_BYTES = 4 * 1024 * 1024


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
    lock_token: str | None = None,
) -> ModelMeta:
    """Store an artifact, then point every worker at it.

    The pointer is set only once the artifact and its meta are stored (one transaction in
    the version's slot), so a reader that sees the new version can always load it: each
    request ranks with the old model or the new one, never a mix. With ``lock_token``, only
    while that token holds the reindex lock: otherwise (the fit's lease lapsed, and another
    fit may have published since) the artifact is retired unused and LeaseLost is raised.
    """
    version = int(r.incr(SEQ_KEY))
    meta = ModelMeta(version, corpus_version, snapshot_at, fitted_at, articles)
    with r.pipeline(transaction=True) as pipe:
        pipe.set(ARTIFACT_KEY % version, artifact)
        pipe.set(META_KEY % version, json.dumps(meta.__dict__))
        pipe.execute()
    holding = None if lock_token is None else (REINDEX_LOCK_KEY, lock_token)
    try:
        previous = versions.set_current_model(r, version, holding=holding)
    except LeaseLost:
        _retire(r, version)
        raise
    if previous is not None:
        # Workers still loading the previous version get a few minutes to finish.
        _retire(r, previous)
    return meta


def _retire(r: redis.Redis, version: int) -> None:
    with r.pipeline(transaction=True) as pipe:
        pipe.expire(ARTIFACT_KEY % version, RETIRED_TTL_SECONDS)
        pipe.expire(META_KEY % version, RETIRED_TTL_SECONDS)
        pipe.execute()


def load(r: redis.Redis, version: int) -> tuple[ModelMeta, bytes] | None:
    raw_meta, artifact = r.mget(META_KEY % version, ARTIFACT_KEY % version)
    if raw_meta is None or artifact is None:
        return None
    return ModelMeta(**json.loads(raw_meta)), artifact


def load_meta(r: redis.Redis, version: int) -> ModelMeta | None:
    """A version's meta alone: a process that maps the host's file of it needs no artifact."""
    raw = r.get(META_KEY % version)
    return ModelMeta(**json.loads(raw)) if raw else None


def load_artifact(r: redis.Redis, version: int) -> bytes | None:
    """A version's artifact, read in ranges of READ_CHUNK_BYTES; None once it is gone."""
    key = ARTIFACT_KEY % version
    size = int(r.strlen(key))
    if size == 0:  # no such key: an artifact is never empty
        return None
    artifact = bytearray(size)
    done = 0
    while done < size:
        chunk: bytes = r.getrange(key, done, min(done + READ_CHUNK_BYTES, size) - 1)
        if not chunk:  # expired meanwhile (retired while this process was loading it)
            return None
        artifact[done : done + len(chunk)] = chunk
        done += len(chunk)
    return bytes(artifact)


def current_meta(r: redis.Redis) -> ModelMeta | None:
    version = r.get(versions.MODEL_CURRENT_KEY)
    if version is None:
        return None
    raw = r.get(META_KEY % int(version))
    return ModelMeta(**json.loads(raw)) if raw else None
