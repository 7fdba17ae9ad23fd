"""The learned ranker's published models: versioned JSON artifacts in Redis, and each
process's copy of the current one.

Every key shares the ``{learned}`` hash tag (one cluster slot), so an artifact and the pointer
to it are written in one transaction. Keys name their family before any id.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from recommender.linear import LinearModel

log = logging.getLogger(__name__)

SEQ_KEY = "nf:{learned}:seq"
CURRENT_KEY = "nf:{learned}:current"  # the version every process ranks with
ARTIFACT_KEY = "nf:{learned}:artifact:%d"  # JSON recommender.linear.LinearModel
LAST_KEY = "nf:{learned}:last"  # JSON: the latest training's outcome, published or not
LEASE_KEY = "nf:{learned}:lease"  # held by the one process training (feed.model.learning)
# The stream length when the latest training started: "enough new events" counts from it.
MARK_KEY = "nf:{learned}:mark"

# A replaced artifact stays readable this long, for processes loading it right now.
RETIRED_TTL_SECONDS = 10 * 60


def publish(r: redis.Redis, model: LinearModel) -> int:
    """Store the artifact and point every process at it (one transaction); its version."""
    version = int(r.incr(SEQ_KEY))
    with r.pipeline(transaction=True) as pipe:
        pipe.get(CURRENT_KEY)
        pipe.set(ARTIFACT_KEY % version, model.to_json())
        pipe.set(CURRENT_KEY, version)
        previous = pipe.execute()[0]
    if previous is not None:
        r.expire(ARTIFACT_KEY % int(previous), RETIRED_TTL_SECONDS)
    return version


def load(r: redis.Redis) -> tuple[int, LinearModel] | None:
    """The current version and its model; None when none is published (or it is unreadable
    by this build: the learned ranker then ranks as tfidf until the next one)."""
    raw = r.get(CURRENT_KEY)
    if raw is None:
        return None
    version = int(raw)
    return _read(r, version)


def _read(r: redis.Redis, version: int) -> tuple[int, LinearModel] | None:
    artifact = r.get(ARTIFACT_KEY % version)
    if artifact is None:
        return None
    try:
        return version, LinearModel.from_json(artifact)
    except ValueError as exc:
        log.error("learned model %s is unreadable here (%s); ranking as tfidf", version, exc)
        return None


def record_outcome(r: redis.Redis, outcome: dict[str, Any]) -> None:
    r.set(LAST_KEY, json.dumps(outcome, sort_keys=True))


def last_outcome(r: redis.Redis) -> dict[str, Any] | None:
    raw = r.get(LAST_KEY)
    found: dict[str, Any] | None = json.loads(raw) if raw else None
    return found


def set_mark(r: redis.Redis, stream_length: int) -> None:
    r.set(MARK_KEY, stream_length)


def mark(r: redis.Redis) -> int | None:
    raw = r.get(MARK_KEY)
    return None if raw is None else int(raw)


@dataclass(frozen=True)
class Published:
    version: int
    model: LinearModel


class LearnedModels:
    """This process's copy of the current learned model, as every web process holds one.

    Feed builds ask for it; the pointer is re-read at most every ``refresh_seconds`` (one GET),
    and the artifact (a few hundred bytes of JSON) only when the pointer moved. When Redis
    cannot answer, the copy in hand keeps serving.
    """

    def __init__(
        self,
        r: redis.Redis,
        refresh_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = r
        self._refresh = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._held: Published | None = None
        self._checked = -float("inf")

    @property
    def held(self) -> Published | None:
        return self._held

    def current(self) -> LinearModel | None:
        now = self._clock()
        if now - self._checked >= self._refresh:
            with self._lock:
                if now - self._checked >= self._refresh:
                    self._refresh_copy()
                    self._checked = now
        held = self._held
        return None if held is None else held.model

    def _refresh_copy(self) -> None:
        try:
            raw = self._redis.get(CURRENT_KEY)
            if raw is None:
                self._held = None
                return
            version = int(raw)
            if self._held is not None and self._held.version == version:
                return
            found = _read(self._redis, version)
        except redis.RedisError as exc:
            log.warning("learned model check skipped: %s", exc)
            return
        if found is not None:
            self._held = Published(*found)
            log.info("loaded learned model %s", found[0])
