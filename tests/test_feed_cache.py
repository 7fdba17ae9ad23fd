"""The cached feed: invalidated by every change that makes it wrong, and only by those."""

from __future__ import annotations

import threading
import time

import pytest

from feed.model.reindex import reindex
from tests.factories import article, demo_corpus, ingest, wait_for_model


@pytest.fixture
def alice(client, tokens):
    demo_corpus(client, tokens.admin(), 300)
    headers = tokens.user("alice")
    client.put("/v1/users/alice/categories/syria", headers=headers)
    assert client.get("/v1/users/alice/feed", headers=headers).headers["X-Feed-Cache"] == "miss"
    assert client.get("/v1/users/alice/feed", headers=headers).headers["X-Feed-Cache"] == "hit"
    return headers


def feed(client, headers, limit=20):
    response = client.get(f"/v1/users/alice/feed?limit={limit}", headers=headers)
    assert response.status_code == 200
    return response


def test_following_a_category_invalidates(client, alice):
    client.put("/v1/users/alice/categories/tech", headers=alice)
    response = feed(client, alice, 100)
    assert response.headers["X-Feed-Cache"] == "miss"
    assert any("tech" in i["categories"] for i in response.json["items"])


def test_unfollowing_invalidates(client, alice):
    client.put("/v1/users/alice/categories/tech", headers=alice)
    client.delete("/v1/users/alice/categories/syria", headers=alice)
    response = feed(client, alice)
    assert response.headers["X-Feed-Cache"] == "miss"
    assert all(i["reason"] != "Because you follow Syria" for i in response.json["items"])


def test_replacing_invalidates(client, alice):
    client.put("/v1/users/alice/categories", json={"categories": ["sports"]}, headers=alice)
    response = feed(client, alice)
    assert response.headers["X-Feed-Cache"] == "miss"
    assert response.json["items"][0]["reason"] == "Because you follow Sports"


def test_a_repeated_toggle_keeps_the_cache(client, alice):
    client.put("/v1/users/alice/categories/syria", headers=alice)
    client.delete("/v1/users/alice/categories/tech", headers=alice)
    assert feed(client, alice).headers["X-Feed-Cache"] == "hit"


def test_replacing_with_the_same_set_keeps_the_cache(client, alice):
    client.put("/v1/users/alice/categories", json={"categories": ["syria"]}, headers=alice)
    assert feed(client, alice).headers["X-Feed-Cache"] == "hit"


def test_another_users_change_keeps_this_cache(client, tokens, alice):
    client.put("/v1/users/bob/categories/tech", headers=tokens.user("bob"))
    assert feed(client, alice).headers["X-Feed-Cache"] == "hit"


def test_an_added_article_invalidates_and_appears(client, tokens, alice):
    fresh = article(
        id="breaking",
        categories=["syria"],
        age_hours=0,
        title="Syria ceasefire talks resume in Damascus",
        summary="Syrian officials and opposition envoys met in Damascus.",
    )
    ingest(client, tokens.admin(), [fresh])
    response = feed(client, alice)
    assert response.headers["X-Feed-Cache"] == "miss"
    assert "breaking" in [i["id"] for i in response.json["items"]]


def test_an_updated_article_invalidates_and_shows_the_update(client, tokens, alice):
    top = feed(client, alice).json["items"][0]
    stored = client.get(f"/v1/articles/{top['id']}").json
    ingest(client, tokens.admin(), [{**stored, "title": "Corrected: " + stored["title"]}])
    response = feed(client, alice)
    assert response.headers["X-Feed-Cache"] == "miss"
    titles = {i["id"]: i["title"] for i in response.json["items"]}
    assert titles[top["id"]].startswith("Corrected: ")


def test_a_deleted_article_leaves_the_feed_at_once(client, tokens, services, alice):
    first = feed(client, alice, 10).json
    doomed = first["items"][3]["id"]
    # Stop refits so the model still holds the article: the feed must drop it regardless.
    services.keeper.stop()
    assert client.delete(f"/v1/articles/{doomed}", headers=tokens.admin()).status_code == 204
    response = feed(client, alice, 10)
    assert response.headers["X-Feed-Cache"] == "miss"
    assert doomed not in [i["id"] for i in response.json["items"]]
    assert len(response.json["items"]) == 10
    # A page from a cursor issued before the delete does not show it either.
    page = client.get(
        f"/v1/users/alice/feed?limit=10&cursor={first['next_cursor']}", headers=alice
    ).json["items"]
    assert doomed not in [i["id"] for i in page]


def test_a_new_model_invalidates(client, services, alice):
    services.keeper.stop()
    reindex(services.redis, live_window_days=30)
    assert feed(client, alice).headers["X-Feed-Cache"] == "miss"


def test_renaming_a_category_invalidates_and_renames_the_reason(client, tokens, alice):
    client.put("/v1/categories/syria", json={"name": "Syrian Civil War"}, headers=tokens.admin())
    wait_for_model(client)
    response = feed(client, alice)
    assert response.headers["X-Feed-Cache"] == "miss"
    assert response.json["items"][0]["reason"] == "Because you follow Syrian Civil War"


def test_concurrent_misses_for_one_user_compute_the_feed_once(app, client, services, alice):
    client.put("/v1/users/alice/categories/tech", headers=alice)  # makes the cache stale
    builds_before = services.feed.builds
    start = threading.Barrier(12)
    results: list[tuple[int, str, list[str]]] = []

    def read() -> None:
        own = app.test_client()
        start.wait()
        response = own.get("/v1/users/alice/feed?limit=20", headers=alice)
        results.append(
            (
                response.status_code,
                response.headers["X-Feed-Cache"],
                [i["id"] for i in response.json["items"]],
            )
        )

    threads = [threading.Thread(target=read) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert services.feed.builds - builds_before == 1
    assert [r[1] for r in results].count("miss") == 1
    assert {r[0] for r in results} == {200}
    assert len({tuple(r[2]) for r in results}) == 1


def test_the_cache_expires_after_its_ttl(settings_overrides, redis_client, tokens):
    from api import create_app

    app = create_app({**settings_overrides, "feed_ttl_seconds": 1})
    client = app.test_client()
    try:
        demo_corpus(client, tokens.admin(), 50)
        headers = tokens.user("carol")
        assert client.get("/v1/users/carol/feed", headers=headers).headers["X-Feed-Cache"] == "miss"
        time.sleep(1.2)
        assert client.get("/v1/users/carol/feed", headers=headers).headers["X-Feed-Cache"] == "miss"
    finally:
        app.extensions["newsfeed"].keeper.stop()
        app.extensions["newsfeed"].redis.close()


def test_a_feed_built_without_the_lock_still_pages(client, services, alice, monkeypatch):
    """A request that gives up waiting for another build makes its own; its cursor works and
    its first page is not cached as the user's."""
    from feed.serving import cache

    client.put("/v1/users/alice/categories/tech", headers=alice)  # the cached list is stale
    services.redis.set(cache.LOCK_KEY % "alice", "someone-else", px=60_000)
    monkeypatch.setattr("feed.serving.service.BUILD_WAIT_SECONDS", 0.2)
    first = client.get("/v1/users/alice/feed?limit=5", headers=alice)
    assert first.headers["X-Feed-Cache"] == "miss"
    cursor = first.json["next_cursor"]
    second = client.get(f"/v1/users/alice/feed?limit=5&cursor={cursor}", headers=alice)
    assert second.status_code == 200 and len(second.json["items"]) == 5
    assert services.redis.get(cache.PAGE_KEY % "alice") is None
