"""Staleness is visible: /readyz and /metrics tell how far the model that ranks feeds lags the
corpus, and /readyz turns "degraded" past NEWSFEED_MAX_MODEL_LAG_SECONDS. The API runs in
queue mode with no worker, as after the incident in issue 13: nothing refits on its own."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from feed.corpus import articles
from feed.corpus.articles import Article
from feed.model import breaking
from feed.model.reindex import fit_under_lock
from tests.conftest import Tokens
from tests.factories import article
from tests.test_metrics import scrape, value

BOUND_SECONDS = 1.0


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(reindex_mode="queue", max_model_lag_seconds=BOUND_SECONDS)


def ready(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/readyz")
    assert response.status_code == 200, response.json
    body: dict[str, Any] = response.json
    return body


def fit(r: redis.Redis) -> None:
    """What a worker's reindex job does."""
    assert fit_under_lock(r, live_window_days=30).result is not None


def bulk_write(r: redis.Redis, count: int) -> None:
    for start in range(0, count, 1000):
        batch = [(i, Article.from_card(article(), "")) for i in range(min(1000, count - start))]
        articles.upsert(r, batch)


def test_readyz_reports_no_lag_while_the_extended_model_holds_every_write(
    client: FlaskClient, tokens: Tokens, redis_client: redis.Redis
) -> None:
    bulk_write(redis_client, 20)
    fit(redis_client)
    assert ready(client)["model_lag_versions"] == 0
    reply = client.post("/v1/articles", json={"articles": [article()]}, headers=tokens.admin())
    assert reply.status_code == 200
    body = ready(client)
    # Not refitted, yet feeds rank with the new article: the model extended with it.
    assert body["model_corpus_version"] < body["corpus_version"]
    assert body["status"] == "ready"
    assert body["model_lag_versions"] == 0 and body["model_lag_seconds"] == 0


def test_readyz_degrades_once_feeds_lack_writes_for_longer_than_the_bound(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    bulk_write(redis_client, 20)
    fit(redis_client)
    fitted = ready(client)["corpus_version"]
    # More writes than a model is ever extended with, and no worker to refit.
    bulk_write(redis_client, breaking.MAX_CHANGES + 1)
    body = ready(client)
    assert body["status"] == "ready"  # behind, not yet for longer than the bound
    assert body["model_lag_versions"] == body["corpus_version"] - fitted > 0
    time.sleep(BOUND_SECONDS + 0.5)

    response = client.get("/readyz")
    assert response.status_code == 200  # still serving: the same model serves every process
    body = response.json
    assert body["status"] == "degraded"
    assert body["model_lag_seconds"] > BOUND_SECONDS
    assert "newsfeed jobs" in body["reason"]
    samples = scrape(client)
    assert value(samples, "newsfeed_model_lag_versions") == body["model_lag_versions"]
    lag = value(samples, "newsfeed_model_lag_seconds")
    assert lag is not None and lag >= body["model_lag_seconds"]
    assert value(samples, "newsfeed_model_corpus_version") == fitted

    fit(redis_client)  # the workers are back
    body = ready(client)
    assert body["status"] == "ready" and "reason" not in body
    assert body["model_lag_versions"] == 0 and body["model_lag_seconds"] == 0
    assert value(scrape(client), "newsfeed_model_lag_seconds") == 0


def test_a_bound_of_zero_never_degrades(
    make_app: Callable[..., Flask], redis_client: redis.Redis
) -> None:
    client = make_app(reindex_mode="queue", max_model_lag_seconds=0).test_client()
    bulk_write(redis_client, 20)
    fit(redis_client)
    bulk_write(redis_client, breaking.MAX_CHANGES + 1)
    ready(client)
    time.sleep(0.3)
    body = ready(client)
    assert body["status"] == "ready" and body["model_lag_seconds"] > 0
