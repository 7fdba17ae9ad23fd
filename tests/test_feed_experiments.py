"""A ranking experiment end to end: assignment in the feed, per-variant caches, exposures,
events counted per variant, and the results endpoint."""

from __future__ import annotations

import pytest

from tests.factories import demo_corpus

EXPERIMENT = {
    "name": "latest-vs-tfidf",
    "variants": [
        {"name": "control", "ranker": "tfidf", "params": {}, "weight": 1},
        {"name": "fresh", "ranker": "latest", "params": {}, "weight": 1},
    ],
    "traffic": 1.0,
}


@pytest.fixture
def running(client, tokens):
    demo_corpus(client, tokens.admin(), 300)
    admin = tokens.admin()
    assert client.post("/v1/experiments", json=EXPERIMENT, headers=admin).status_code == 201
    assert client.post("/v1/experiments/latest-vs-tfidf/start", headers=admin).status_code == 200
    return admin


def read_feed(client, tokens, user):
    headers = tokens.user(user)
    client.put(
        f"/v1/users/{user}/categories", json={"categories": ["tech", "science"]}, headers=headers
    )
    response = client.get(f"/v1/users/{user}/feed?limit=10", headers=headers)
    assert response.status_code == 200
    return response


def test_the_feed_says_which_variant_served_it(client, tokens, running):
    seen = {}
    for n in range(40):
        body = read_feed(client, tokens, f"reader-{n}").json
        assert body["experiment"] == "latest-vs-tfidf"
        seen[f"reader-{n}"] = body["variant"]
    assert set(seen.values()) == {"control", "fresh"}
    again = read_feed(client, tokens, "reader-0").json
    assert again["variant"] == seen["reader-0"]


def test_the_fresh_variant_ranks_newest_first(client, tokens, running):
    for n in range(40):
        body = read_feed(client, tokens, f"reader-{n}").json
        if body["variant"] == "fresh":
            dates = [i["published_at"] for i in body["items"]]
            assert dates == sorted(dates, reverse=True)
            return
    pytest.fail("no reader landed in the 'fresh' variant")


def test_stopping_the_experiment_moves_readers_back_to_the_default(client, tokens, running):
    first = read_feed(client, tokens, "reader-1")
    assert first.json["variant"] is not None
    client.post("/v1/experiments/latest-vs-tfidf/stop", headers=running)
    after = read_feed(client, tokens, "reader-1")
    assert after.json["experiment"] is None and after.json["variant"] is None
    assert after.headers["X-Feed-Cache"] == "miss"


def test_exposures_and_events_are_counted_per_variant(client, tokens, running):
    variants = {}
    for n in range(30):
        user = f"reader-{n}"
        body = read_feed(client, tokens, user).json
        variants[user] = body["variant"]
        events = [
            {
                "type": "impression",
                "user_id": user,
                "article_id": i["id"],
                "feed_id": body["feed_id"],
            }
            for i in body["items"]
        ]
        events.append(
            {
                "type": "click",
                "user_id": user,
                "article_id": body["items"][0]["id"],
                "feed_id": body["feed_id"],
            }
        )
        assert (
            client.post(
                "/v1/events", json={"events": events}, headers=tokens.user(user)
            ).status_code
            == 202
        )
    results = client.get("/v1/experiments/latest-vs-tfidf/results", headers=running).json
    by_name = {v["name"]: v for v in results["variants"]}
    for name in ("control", "fresh"):
        users = sum(1 for v in variants.values() if v == name)
        assert by_name[name]["users"] == users
        assert by_name[name]["impressions"] == 10 * users
        assert by_name[name]["clicks"] == users
    assert "delta method" in results["method"]
    assert results["srm"]["mismatch"] is False
