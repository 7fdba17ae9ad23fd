"""The category catalog: slugs, display names and article counts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import redis
from redis.client import Pipeline

from feed.exceptions import CategoryNotFound
from feed.ids import check_slug
from feed.model import versions

NAMES_KEY = "nf:{corpus}:categories"  # hash slug -> display name
COUNTS_KEY = "nf:{corpus}:categories:counts"  # hash slug -> number of stored articles


@dataclass(frozen=True)
class Category:
    slug: str
    name: str
    article_count: int


def default_name(slug: str) -> str:
    """A readable name for a category first named by an ingested article."""
    return " ".join(part.capitalize() for part in slug.split("-"))


def list_all(r: redis.Redis) -> list[Category]:
    pipe = r.pipeline(transaction=False)
    pipe.hgetall(NAMES_KEY)
    pipe.hgetall(COUNTS_KEY)
    names, counts = pipe.execute()
    return sorted(
        (
            Category(slug.decode(), name.decode(), int(counts.get(slug, 0)))
            for slug, name in names.items()
        ),
        key=lambda c: c.slug,
    )


def names(r: redis.Redis) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in r.hgetall(NAMES_KEY).items()}


def queue_names(pipe: Pipeline) -> None:
    pipe.hgetall(NAMES_KEY)


def put(r: redis.Redis, slug: str, name: str) -> tuple[Category, bool]:
    """Create or rename one category; answers the category and whether it was created."""
    check_slug(slug)
    pipe = r.pipeline(transaction=True)
    pipe.hset(NAMES_KEY, slug, name)
    pipe.hget(COUNTS_KEY, slug)
    # Cached reasons ("Because you follow Syria") carry the name, so a rename must miss them.
    versions.bump_corpus(pipe)
    created, count, _ = pipe.execute()
    return Category(slug, name, int(count or 0)), bool(created)


def require(r: redis.Redis, slugs: Iterable[str]) -> None:
    """Raise CategoryNotFound naming every slug that is not in the catalog."""
    wanted = list(dict.fromkeys(slugs))
    if not wanted:
        return
    found = r.hmget(NAMES_KEY, wanted)
    missing = [slug for slug, name in zip(wanted, found, strict=True) if name is None]
    if missing:
        raise CategoryNotFound(missing)


def ensure(pipe: Pipeline, slugs: Iterable[str]) -> None:
    """Create categories named by articles on the fly, keeping any existing name."""
    for slug in slugs:
        pipe.hsetnx(NAMES_KEY, slug, default_name(slug))


def adjust_counts(pipe: Pipeline, deltas: Mapping[str, int]) -> None:
    for slug, delta in deltas.items():
        if delta:
            pipe.hincrby(COUNTS_KEY, slug, delta)
