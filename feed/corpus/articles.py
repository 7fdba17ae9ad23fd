"""The article corpus in Redis: upsert keyed by id, dedupe by canonical URL, delete, read."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from redis.client import Pipeline

from feed.corpus import categories
from feed.corpus.urls import url_digest
from feed.exceptions import ArticleNotFound, WriteConflict
from feed.model import versions
from feed.storage import locks
from feed.storage.connection import slot_mget

log = logging.getLogger(__name__)

# The corpus shares one cluster slot, so a batch upsert stays one transaction (README: keys).
# An id, which may contain ":", is always the last part of its key, after a prefix that begins
# no other key: the id "x:body" cannot name the body of "x" (docs/design.md: Redis keys).
CARD_KEY = "nf:{corpus}:article:%s"  # JSON of every field a feed item shows
BODY_KEY = "nf:{corpus}:body:%s"  # full text, read for indexing and single-article reads
URL_KEY = "nf:{corpus}:url:%s"  # sha1(canonical url) -> owning article id
TIMELINE_KEY = "nf:{corpus}:by_time"  # zset id -> published_at epoch; bounds the live window
# Ids deleted recently (zset id -> deletion epoch): a model fitted before the delete still
# holds them, so feed builds exclude them until a newer model is fitted.
DELETED_KEY = "nf:{corpus}:deleted"

MAX_WRITE_RETRIES = 8  # optimistic-lock retries when concurrent writers touch the same ids
READ_CHUNK = 1000


@dataclass(frozen=True)
class Article:
    id: str
    url: str
    title: str
    summary: str
    categories: tuple[str, ...]
    published_at: datetime
    source: str | None = None
    body: str = ""

    def card(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "title": self.title,
            "summary": self.summary,
            "categories": list(self.categories),
            "published_at": iso(self.published_at),
            "source": self.source,
        }

    @property
    def text(self) -> str:
        return f"{self.title}\n{self.summary}\n{self.body}"

    @classmethod
    def from_card(cls, card: dict[str, Any], body: str = "") -> Article:
        return cls(
            id=card["id"],
            url=card["url"],
            title=card["title"],
            summary=card["summary"],
            categories=tuple(card["categories"]),
            published_at=parse_iso(card["published_at"]),
            source=card.get("source"),
            body=body,
        )


@dataclass(frozen=True)
class Rejection:
    id: str | None
    reason: str
    message: str
    index: int | None = None
    duplicate_of: str | None = None


@dataclass
class UpsertResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def upsert(r: redis.Redis, batch: Sequence[tuple[int, Article]]) -> UpsertResult:
    """Store a batch atomically: every accepted article is written, or none is.

    ``batch`` pairs each article with its index in the client's request, so rejections can
    point back at it.
    """
    result = UpsertResult()
    accepted: list[tuple[int, Article]] = []
    seen_ids: dict[str, int] = {}
    seen_urls: dict[str, str] = {}
    for index, article in batch:
        digest = url_digest(article.url)
        if article.id in seen_ids:
            result.rejected.append(
                Rejection(
                    article.id,
                    "duplicate_id",
                    "the same id appears earlier in this batch",
                    index,
                    duplicate_of=article.id,
                )
            )
        elif digest in seen_urls:
            result.rejected.append(
                Rejection(
                    article.id,
                    "duplicate_url",
                    f"the same canonical url appears earlier in this batch as "
                    f"{seen_urls[digest]!r}",
                    index,
                    duplicate_of=seen_urls[digest],
                )
            )
        else:
            seen_ids[article.id] = index
            seen_urls[digest] = article.id
            accepted.append((index, article))
    if not accepted:
        return result

    for _attempt in range(MAX_WRITE_RETRIES):
        try:
            return _write(r, accepted, result)
        except redis.WatchError as error:
            locks.raise_if_disconnected(error)
            continue
    raise WriteConflict("too much write contention on these articles; retry the request")


def _write(r: redis.Redis, accepted: list[tuple[int, Article]], base: UpsertResult) -> UpsertResult:
    card_keys = [CARD_KEY % a.id for _, a in accepted]
    url_keys = [URL_KEY % url_digest(a.url) for _, a in accepted]
    result = UpsertResult(rejected=list(base.rejected))
    with r.pipeline(transaction=True) as pipe:
        pipe.watch(*card_keys, *url_keys)
        old_cards = slot_mget(pipe, card_keys)
        owners = slot_mget(pipe, url_keys)
        pipe.multi()
        counts: Counter[str] = Counter()
        new_slugs: set[str] = set()
        wrote = False
        for (index, article), raw_old, owner, url_key in zip(
            accepted, old_cards, owners, url_keys, strict=True
        ):
            if owner is not None and owner.decode() != article.id:
                result.rejected.append(
                    Rejection(
                        article.id,
                        "duplicate_url",
                        f"this url is already stored as article {owner.decode()!r}",
                        index,
                        duplicate_of=owner.decode(),
                    )
                )
                continue
            if raw_old is not None:
                old = json.loads(raw_old)
                counts.subtract(old["categories"])
                if url_digest(old["url"]) != url_digest(article.url):
                    pipe.delete(URL_KEY % url_digest(old["url"]))
                result.updated.append(article.id)
            else:
                result.created.append(article.id)
            counts.update(article.categories)
            new_slugs.update(article.categories)
            pipe.set(CARD_KEY % article.id, json.dumps(article.card(), separators=(",", ":")))
            pipe.set(BODY_KEY % article.id, article.body)
            pipe.set(url_key, article.id)
            pipe.zadd(TIMELINE_KEY, {article.id: article.published_at.timestamp()})
            pipe.zrem(DELETED_KEY, article.id)
            wrote = True
        if wrote:
            categories.ensure(pipe, sorted(new_slugs))
            categories.adjust_counts(pipe, counts)
            versions.bump_corpus(pipe, [*result.created, *result.updated])
            pipe.execute()
        else:
            pipe.reset()
    return result


def delete(r: redis.Redis, article_id: str) -> None:
    for _attempt in range(MAX_WRITE_RETRIES):
        try:
            return _delete(r, article_id)
        except redis.WatchError as error:
            locks.raise_if_disconnected(error)
            continue
    raise WriteConflict("too much write contention on this article; retry the request")


def _delete(r: redis.Redis, article_id: str) -> None:
    with r.pipeline(transaction=True) as pipe:
        pipe.watch(CARD_KEY % article_id)
        raw = pipe.get(CARD_KEY % article_id)
        if raw is None:
            raise ArticleNotFound(f"article {article_id!r} does not exist", id=article_id)
        card = json.loads(raw)
        pipe.multi()
        pipe.delete(CARD_KEY % article_id, BODY_KEY % article_id)
        pipe.delete(URL_KEY % url_digest(card["url"]))
        pipe.zrem(TIMELINE_KEY, article_id)
        pipe.zadd(DELETED_KEY, {article_id: time.time()})
        categories.adjust_counts(pipe, {slug: -1 for slug in card["categories"]})
        versions.bump_corpus(pipe, [article_id])
        pipe.execute()


def get(r: redis.Redis, article_id: str) -> Article:
    card, body = r.mget(CARD_KEY % article_id, BODY_KEY % article_id)
    if card is None:
        raise ArticleNotFound(f"article {article_id!r} does not exist", id=article_id)
    return Article.from_card(json.loads(card), (body or b"").decode())


def queue_raw_cards(pipe: Pipeline, ids: Sequence[str]) -> None:
    slot_mget(pipe, [CARD_KEY % i for i in ids])


def raw_cards(r: redis.Redis, ids: Sequence[str]) -> list[bytes | None]:
    """Each id's feed-item fields as a compact JSON object, None where the article is gone."""
    if not ids:
        return []
    return list(r.mget([CARD_KEY % i for i in ids]))


def titles(r: redis.Redis, ids: Iterable[str]) -> dict[str, str]:
    """The title of each of these articles that still exists."""
    wanted = sorted(set(ids))
    found = zip(wanted, raw_cards(r, wanted), strict=True)
    return {i: json.loads(card)["title"] for i, card in found if card is not None}


def read_many(r: redis.Redis, ids: Sequence[str]) -> list[Article | None]:
    """Each id's article with its body, None where it is gone."""
    return list(_read(r, ids))


def iter_published_since(r: redis.Redis, since: float) -> Iterator[Article]:
    """Every stored article published at or after ``since`` (epoch), with its body."""
    ids = [i.decode() for i in r.zrangebyscore(TIMELINE_KEY, since, "+inf")]
    # None: deleted between the two reads.
    return (article for article in _read(r, ids) if article is not None)


def _read(r: redis.Redis, ids: Sequence[str]) -> Iterator[Article | None]:
    """Articles with their bodies, one round trip per READ_CHUNK ids."""
    for start in range(0, len(ids), READ_CHUNK):
        chunk = ids[start : start + READ_CHUNK]
        pipe = r.pipeline(transaction=False)
        slot_mget(pipe, [CARD_KEY % i for i in chunk])
        slot_mget(pipe, [BODY_KEY % i for i in chunk])
        cards, bodies = pipe.execute()
        for raw, body in zip(cards, bodies, strict=True):
            yield (
                None if raw is None else Article.from_card(json.loads(raw), (body or b"").decode())
            )


def queue_deleted_since(pipe: Pipeline, since: float) -> None:
    pipe.zrangebyscore(DELETED_KEY, since, "+inf")


def forget_deleted_before(r: redis.Redis, before: float) -> None:
    r.zremrangebyscore(DELETED_KEY, "-inf", f"({before}")


def count(r: redis.Redis) -> int:
    return int(r.zcard(TIMELINE_KEY))
