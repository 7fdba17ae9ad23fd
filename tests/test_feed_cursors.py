"""Cursors: opaque, stable while the corpus moves, and refused clearly when forged or stale."""

from __future__ import annotations

import time

import pytest

from tests.factories import article, demo_corpus, ingest


@pytest.fixture
def alice(client, tokens):
    demo_corpus(client, tokens.admin(), 300)
    headers = tokens.user("alice")
    client.put(
        "/v1/users/alice/categories", json={"categories": ["tech", "business"]}, headers=headers
    )
    return headers


def page(client, headers, cursor=None, limit=10, user="alice"):
    url = f"/v1/users/{user}/feed?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
    return client.get(url, headers=headers)


def test_page_two_continues_page_one_while_articles_arrive(client, tokens, alice):
    first = page(client, alice).json
    second = page(client, alice, first["next_cursor"]).json
    # Fresh, highly relevant articles arrive and the model is refitted between the pages.
    ingest(
        client,
        tokens.admin(),
        [
            article(categories=["tech"], age_hours=0, title=f"Chipmakers unveil AI processor {n}")
            for n in range(15)
        ],
    )
    assert page(client, alice).headers["X-Feed-Cache"] == "miss"  # page one has moved on
    again = page(client, alice, first["next_cursor"]).json
    assert again["items"] == second["items"]
    assert again["next_cursor"] == second["next_cursor"]
    third = page(client, alice, second["next_cursor"]).json
    seen = [i["id"] for p in (first, second, third) for i in p["items"]]
    assert len(seen) == len(set(seen)) == 30


def test_a_cursor_is_opaque(client, alice):
    cursor = page(client, alice).json["next_cursor"]
    assert "alice" not in cursor and "{" not in cursor


@pytest.mark.parametrize(
    "forged",
    [
        "x",
        "not-a-cursor",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "%00%01",
        "a" * 401,
        "😀",
    ],
)
def test_a_forged_cursor_is_a_400(client, alice, forged):
    response = page(client, alice, forged)
    assert response.status_code in (400, 422)
    assert response.json["error"]["code"] in ("invalid_cursor", "validation_error")


def test_a_tampered_cursor_is_a_400(client, alice):
    cursor = page(client, alice).json["next_cursor"]
    tampered = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    response = page(client, alice, tampered)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_cursor"


def test_another_users_cursor_is_refused(client, tokens, alice):
    cursor = page(client, alice).json["next_cursor"]
    bob = tokens.user("bob")
    client.put("/v1/users/bob/categories/tech", headers=bob)
    response = page(client, bob, cursor, user="bob")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_cursor"


def test_a_stale_cursor_is_a_400_that_says_to_restart(settings_overrides, redis_client, tokens):
    from api import create_app

    app = create_app({**settings_overrides, "feed_ttl_seconds": 1, "cursor_ttl_seconds": 1})
    client = app.test_client()
    try:
        demo_corpus(client, tokens.admin(), 60)
        headers = tokens.user("dave")
        cursor = page(client, headers, user="dave").json["next_cursor"]
        time.sleep(1.2)
        response = page(client, headers, cursor, user="dave")
        assert response.status_code == 400
        assert response.json["error"]["code"] == "stale_cursor"
        assert "first page" in response.json["error"]["message"]
    finally:
        app.extensions["newsfeed"].keeper.stop()
        app.extensions["newsfeed"].redis.close()
