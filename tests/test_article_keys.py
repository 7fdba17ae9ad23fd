"""Ids may contain ":", and still no article id names another article's keys: "x:body" is
its own article, never the body of "x" (docs/design.md: Redis keys)."""

from __future__ import annotations

import json

import pytest

from tests.factories import article, ingest, wait_for_model, whole_feed

pytestmark = pytest.mark.parametrize("redis_url", ["single", "cluster"], indirect=True)


def click(client, headers, article_id, user="alice"):
    batch = {"events": [{"type": "click", "user_id": user, "article_id": article_id}]}
    return client.post("/v1/events", json=batch, headers=headers)


def test_the_body_suffix_of_a_stored_id_names_no_article(client, tokens):
    ingest(client, tokens.admin(), [article(id="demo-000001")])
    response = client.get("/v1/articles/demo-000001:body")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "article_not_found"
    clicked = click(client, tokens.user("alice"), "demo-000001:body")
    assert clicked.json["accepted"] == 0
    assert clicked.json["rejected"][0]["reason"] == "unknown_article"


def test_a_card_shaped_body_plants_no_item_in_feeds(client, tokens):
    """The body of "vic" was the card of "vic:body": a CMS write could add an unvalidated item
    to followers' feeds, or make their feed answer a body that is not JSON."""
    admin, alice = tokens.admin(), tokens.user("alice")
    planted = {
        "id": "vic:body",
        "url": "javascript:alert(document.cookie)",
        "title": "Planted",
        "summary": "never validated",
        "categories": ["world"],
        "published_at": "2030-01-01T00:00:00Z",
        "source": None,
    }
    stories = [article(categories=["world"]) for _ in range(5)]
    vic = article(id="vic", categories=["world"], body=json.dumps(planted))
    ingest(client, admin, [*stories, vic])
    assert client.put("/v1/users/alice/categories/world", headers=alice).status_code == 200

    assert click(client, alice, "vic:body").json["accepted"] == 0  # no popularity to ride
    assert client.get("/v1/articles/vic:body").status_code == 404
    assert client.get("/v1/articles/vic").json["body"] == json.dumps(planted)
    ids = [item["id"] for item in whole_feed(client, "alice", alice)]
    assert sorted(ids) == sorted(a["id"] for a in [*stories, vic])

    # Fits keep working: a later write is covered by a new model.
    ingest(client, admin, [article(categories=["world"])])
    assert wait_for_model(client)["model_corpus_version"] >= 2


def test_an_article_and_its_body_suffixed_twin_keep_their_own_card_and_body(client, tokens):
    admin = tokens.admin()
    first = article(id="a", body="The body of a.")
    twin = article(id="a:body", body="The body of a:body.", title="A twin with its own title")
    ingest(client, admin, [first, twin])
    assert client.get("/v1/articles/a").json["body"] == "The body of a."
    assert client.get("/v1/articles/a:body").json["title"] == twin["title"]
    assert client.get("/v1/articles/a:body").json["body"] == "The body of a:body."

    ingest(client, admin, [{**first, "body": "Corrected."}])
    assert client.get("/v1/articles/a").json["body"] == "Corrected."
    assert client.get("/v1/articles/a:body").json["body"] == "The body of a:body."

    assert client.delete("/v1/articles/a", headers=admin).status_code == 204
    assert client.get("/v1/articles/a").status_code == 404
    assert client.get("/v1/articles/a:body").json["body"] == "The body of a:body."
