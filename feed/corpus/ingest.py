"""Corpus writes as the API and CLI see them: store, then wake the model keeper to refit."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from feed.corpus import articles
from feed.corpus.articles import Article, Rejection, UpsertResult
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
        result = articles.upsert(self._redis, batch)
        result.rejected = sorted([*rejected, *result.rejected], key=lambda r: r.index or 0)
        if result.changed:
            self._keeper.poke()
        return result

    def delete(self, article_id: str) -> None:
        articles.delete(self._redis, check_id(article_id, "article id"))
        self._keeper.poke()

    def get(self, article_id: str) -> Article:
        return articles.get(self._redis, check_id(article_id, "article id"))
