"""Builders for test data and the few steps most tests share."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient

_ids = itertools.count(1)


def article(**overrides: Any) -> dict[str, Any]:
    """One valid article in wire format; every field can be overridden."""
    n = next(_ids)
    published = datetime.now(UTC) - timedelta(hours=overrides.pop("age_hours", 1))
    base: dict[str, Any] = {
        "id": f"a-{n}",
        "url": f"https://news.example.com/story/{n}",
        "title": f"Story number {n} about markets and elections",
        "summary": "A summary of the story.",
        "body": "The body of the story, with enough words to index.",
        "categories": ["business"],
        "published_at": published.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source": "Test Wire",
    }
    base.update(overrides)
    return base


def ingest(
    client: FlaskClient, admin: dict[str, str], articles: list[dict[str, Any]]
) -> dict[str, Any]:
    """Upsert in API-sized batches, then wait until the model covers the new corpus."""
    result: dict[str, Any] = {"created": [], "updated": [], "rejected": []}
    for start in range(0, len(articles), 1000):
        response = client.post(
            "/v1/articles", json={"articles": articles[start : start + 1000]}, headers=admin
        )
        assert response.status_code == 200, response.json
        for key in result:
            result[key].extend(response.json[key])
    wait_for_model(client)
    return result


def wait_for_model(client: FlaskClient, timeout: float = 20.0) -> dict[str, Any]:
    """Block until the published model was fitted on the current corpus version."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/readyz")
        body = response.json or {}
        if response.status_code == 200 and body["model_corpus_version"] >= body["corpus_version"]:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"model did not catch up with the corpus: {body}")
        time.sleep(0.02)


def demo_corpus(
    client: FlaskClient, admin: dict[str, str], count: int = 600, **kwargs: Any
) -> list[dict[str, Any]]:
    """Ingest a generated corpus (devtools.demo) and wait for its model; returns the articles."""
    from devtools.demo import generate_articles

    articles = generate_articles(count, **kwargs)
    ingest(client, admin, articles)
    return articles


def whole_feed(
    client: FlaskClient, user_id: str, headers: dict[str, str], limit: int = 25
) -> list[dict[str, Any]]:
    """Every item of a user's feed, following next_cursor to the end."""
    items: list[dict[str, Any]] = []
    url = f"/v1/users/{user_id}/feed?limit={limit}"
    while True:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.json
        items.extend(response.json["items"])
        cursor = response.json["next_cursor"]
        if cursor is None:
            return items
        url = f"/v1/users/{user_id}/feed?limit={limit}&cursor={cursor}"
