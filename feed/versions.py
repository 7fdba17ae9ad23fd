"""The two global counters every cached feed is keyed on: corpus version and current model."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from redis.client import Pipeline

from feed.connection import mget_across_slots

# Any article or category write bumps the corpus version, so cached feeds built before it miss.
CORPUS_VERSION_KEY = "nf:{corpus}:version"
# The model version every worker should rank with; set only after its artifact is fully stored.
MODEL_CURRENT_KEY = "nf:{corpus}:model"


@dataclass(frozen=True)
class Versions:
    corpus: int
    model: int


def bump_corpus(pipe: Pipeline) -> None:
    pipe.incr(CORPUS_VERSION_KEY)


def set_current_model(r: redis.Redis, version: int) -> int | None:
    """Point every worker at ``version``; answers the version it replaces, if any."""
    previous = r.set(MODEL_CURRENT_KEY, version, get=True)
    return None if previous is None else int(previous)


def parse(raw: list[bytes | None]) -> Versions:
    corpus, model = raw
    return Versions(corpus=int(corpus or 0), model=int(model or 0))


def read(r: redis.Redis) -> Versions:
    return parse(r.mget(CORPUS_VERSION_KEY, MODEL_CURRENT_KEY))


def read_with(r: redis.Redis, *keys: str) -> tuple[Versions, list[bytes | None]]:
    """The versions and more keys in one round trip: this is every cache hit's only read.

    On a cluster it is one MGET per slot (the versions' and the reader's), sent together.
    """
    corpus, model, *values = mget_across_slots(r, [CORPUS_VERSION_KEY, MODEL_CURRENT_KEY, *keys])
    return parse([corpus, model]), values
