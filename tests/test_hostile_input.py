"""Hostile input a client or an admin can send answers 4xx in the one error shape, never 5xx."""

from __future__ import annotations

import json

import pytest

from tests.factories import article, ingest


def error_body(response) -> dict:
    body = response.get_json()
    assert set(body) == {"error"} and body["error"]["status"] == response.status_code, body
    return body["error"]


@pytest.mark.parametrize("depth", [100, 2_000, 50_000])
def test_deeply_nested_json_is_refused_not_a_500(client, tokens, depth):
    raw = "[" * depth + "]" * depth
    response = client.post(
        "/v1/events",
        data=json.dumps({"events": "PLACEHOLDER"}).replace('"PLACEHOLDER"', raw),
        content_type="application/json",
        headers=tokens.user("alice"),
    )
    assert response.status_code in (202, 400), response.get_data()[:200]
    if response.status_code == 202:  # each nested "event" rejected on its own
        assert response.get_json()["accepted"] == 0
    else:
        error_body(response)


@pytest.mark.parametrize(
    "published_at",
    [
        "0001-01-01T00:00:00+05:00",
        "0001-01-01T00:30:00+01:00",
        "9999-12-31T23:59:59-05:00",
        "9999-12-31T23:00:00-14:00",
        "0001-01-01T00:00:00Z",
        "1000-06-01T00:00:00Z",
    ],
)
def test_dates_near_the_limits_are_refused_or_stored_readably(client, tokens, published_at):
    admin = tokens.admin()
    response = client.post(
        "/v1/articles",
        json={"articles": [article(id="edge", published_at=published_at)]},
        headers=admin,
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    if body["created"]:  # accepted: it must read back, for good
        read = client.get("/v1/articles/edge")
        assert read.status_code == 200, read.get_json()
    else:
        [rejected] = body["rejected"]
        assert rejected["reason"] == "invalid" and "published_at" in rejected["message"]


def test_a_lone_surrogate_in_a_category_name_is_a_400_and_writes_nothing(client, tokens):
    """Valid JSON, but no UTF-8 can store it: refused at the door (it used to be a 500)."""
    response = client.put(
        "/v1/categories/tech",
        data='{"name": "Tech \\ud800"}',
        content_type="application/json",
        headers=tokens.admin(),
    )
    assert response.status_code == 400, response.get_json()
    assert "lone UTF-16 surrogate" in error_body(response)["message"]
    slugs = [c["slug"] for c in client.get("/v1/categories").get_json()["categories"]]
    assert "tech" not in slugs


def test_a_lone_surrogate_anywhere_in_an_article_batch_refuses_the_batch(client, tokens):
    raw = json.dumps({"articles": [article(id="ok"), article(id="bad", title="x")]})
    raw = raw.replace('"title": "x"', '"title": "bad \\udfff title"')
    response = client.post(
        "/v1/articles", data=raw, content_type="application/json", headers=tokens.admin()
    )
    assert response.status_code == 400, response.get_json()
    assert "lone UTF-16 surrogate" in error_body(response)["message"]
    assert client.get("/v1/articles/ok").status_code == 404  # nothing half-written
    ingest(client, tokens.admin(), [article(id="after")])  # the store still works


def test_an_empty_cursor_is_the_first_page(client, tokens):
    alice = tokens.user("alice")
    client.put("/v1/users/alice/categories/tech", headers=alice)
    ingest(client, tokens.admin(), [article(id=f"t{i}", categories=["tech"]) for i in range(3)])
    first = client.get("/v1/users/alice/feed?limit=2", headers=alice)
    empty = client.get("/v1/users/alice/feed?limit=2&cursor=", headers=alice)
    assert empty.status_code == 200, empty.get_json()
    assert [i["id"] for i in empty.get_json()["items"]] == [
        i["id"] for i in first.get_json()["items"]
    ]


def test_an_invalid_event_naming_another_user_still_refuses_the_batch(client, tokens):
    """The promise is "any event for another user refuses the whole batch (403)", also when
    that event is invalid for another reason (an unknown type)."""
    ingest(client, tokens.admin(), [article(id="a1")])
    events = [
        {"type": "click", "user_id": "alice", "article_id": "a1"},
        {"type": "teleport", "user_id": "bob", "article_id": "a1"},
    ]
    response = client.post("/v1/events", json={"events": events}, headers=tokens.user("alice"))
    assert response.status_code == 403, response.get_json()
    assert "'bob'" in error_body(response)["message"]
