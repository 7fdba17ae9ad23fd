"""Corpus writes as the API and CLI see them: store, then wake the model keeper to refit."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from feed.corpus import articles
from feed.corpus.articles import Article, Rejection, UpsertResult
from feed.corpus.urls import canonical_url
from feed.ids import check_id
from feed.model.keeper import ModelKeeper

MAX_BATCH = 1000  # articles per call: bounds one transaction's size and the request body


class Corpus:
    def __init__(self, r: redis.Redis, keeper: ModelKeeper) -> None:
        self._redis = r
        self._keeper = keeper

    def upsert(
        self, batch: Sequence[tuple[int, Article]], rejected: Sequence[Rejection] = ()
    ) -> UpsertResult:
        usable, unusable = _usable_urls(batch)
        result = articles.upsert(self._redis, usable)
        result.rejected = sorted(
            [*rejected, *unusable, *result.rejected], key=lambda r: r.index or 0
        )
        if result.changed:
            self._keeper.poke()
        return result

    def delete(self, article_id: str) -> None:
        articles.delete(self._redis, check_id(article_id, "article id"))
        self._keeper.poke()

    def get(self, article_id: str) -> Article:
        return articles.get(self._redis, check_id(article_id, "article id"))


def _usable_urls(
    batch: Sequence[tuple[int, Article]],
) -> tuple[list[tuple[int, Article]], list[Rejection]]:
    """Articles whose URL has a canonical form, and a rejection for the others.

    The API's schema refuses such URLs already; this covers every other writer (feed polls,
    `newsfeed ingest`), for which a port past 65535 would fail the whole batch.
    """
    usable: list[tuple[int, Article]] = []
    unusable: list[Rejection] = []
    for index, article in batch:
        try:
            canonical_url(article.url)
        except ValueError:
            unusable.append(
                Rejection(article.id, "invalid", "url: not a usable http(s) URL", index)
            )
        else:
            usable.append((index, article))
    return usable, unusable
