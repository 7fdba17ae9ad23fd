"""The feed inspector's explanations: each ranked item's score as the parts its ranker used."""

from __future__ import annotations

from dataclasses import replace

import pytest

from feed.model import learned_store
from feed.readers import activity
from feed.serving import cache
from recommender.diversity import MMRRanker
from recommender.ranker import Ranker, RankRequest
from recommender.registry import make_ranker
from tests.factories import demo_corpus
from tests.test_learned import HOUR, NOW, corpus, linear

REQUEST = RankRequest(
    ("sport",),
    NOW,
    15,
    history=(("a004", NOW - HOUR), ("a007", NOW - 2 * HOUR)),
    popularity={"a001": (3.0, 20.0), "a003": (1.0, 40.0)},
    learned=linear({"follow_score": 1.5, "history_pull": 0.8, "freshness": 0.6, "ctr": 0.3}),
)
RANKERS: list[Ranker] = [
    make_ranker(name) for name in ("tfidf", "learned", "latest", "popular")
] + [MMRRanker(make_ranker("tfidf"))]


@pytest.mark.parametrize("ranker", RANKERS, ids=lambda r: r.name)
def test_explained_parts_sum_to_the_score_and_change_nothing_else(ranker: Ranker) -> None:
    model = corpus()
    plain = ranker.rank(model, REQUEST)
    explained = ranker.rank(model, replace(REQUEST, explain=True))
    assert [replace(r, parts=(), factors=()) for r in explained] == plain
    assert plain and all(not r.parts for r in plain)
    for item in explained:
        assert item.parts
        assert sum(value for _, value in item.parts) == pytest.approx(item.score, abs=1e-9)


def test_tfidf_parts_are_follows_history_and_freshness() -> None:
    explained = make_ranker("tfidf").rank(corpus(), replace(REQUEST, explain=True))
    assert {name for item in explained for name, _ in item.parts} == {
        "follow_similarity",
        "follow_bonus",
        "history",
    }
    assert all(0 < dict(item.factors)["freshness"] <= 1 for item in explained)
    assert any(dict(item.parts)["history"] > 0 for item in explained)


def test_learned_parts_are_its_features_contributions() -> None:
    explained = make_ranker("learned").rank(corpus(), replace(REQUEST, explain=True))
    names = {name for item in explained for name, _ in item.parts}
    assert {"baseline", "follow_score", "freshness"} <= names
    assert "clicks_log" not in names  # weighed 0 by the model: no part


def test_a_reader_following_nothing_gets_freshness_alone() -> None:
    request = RankRequest((), NOW, 5, explain=True)
    for item in make_ranker("tfidf").rank(corpus(), request):
        assert [name for name, _ in item.parts] == ["freshness"]


# ---------------------------------------------------------------------------------------------
# The feed serves it to admins

EXPERIMENT = {
    "name": "inspect-me",
    "variants": [
        {"name": "control", "ranker": "tfidf", "params": {}, "weight": 1},
        {"name": "fresh", "ranker": "latest", "params": {}, "weight": 1},
    ],
    "traffic": 1.0,
}


@pytest.fixture
def reader(client, tokens):
    """A reader of tech and science with some reading, on the demo corpus."""
    admin = tokens.admin()
    articles = demo_corpus(client, admin, 200)
    headers = tokens.user("ann")
    follows = {"categories": ["tech", "science"]}
    assert client.put("/v1/users/ann/categories", json=follows, headers=headers).status_code == 200
    first = client.get("/v1/users/ann/feed?limit=5", headers=headers).json
    events = [
        {"type": "click", "user_id": "ann", "article_id": item["id"], "feed_id": first["feed_id"]}
        for item in first["items"][:3]
    ]
    assert client.post("/v1/events", json={"events": events}, headers=headers).status_code < 300
    return articles


def explained(client, tokens, query: str = "") -> dict:
    response = client.get(f"/v1/users/ann/feed?explain=true{query}", headers=tokens.admin())
    assert response.status_code == 200, response.json
    assert response.headers["Cache-Control"] == "no-store"
    return response.json


def assert_explained(page: dict) -> None:
    assert page["items"]
    for item in page["items"]:
        parts = item["explain"]["parts"]
        assert parts
        assert sum(p["value"] for p in parts) == pytest.approx(item["explain"]["total"], abs=1e-9)
        assert item["score"] == pytest.approx(item["explain"]["total"], abs=1e-6)
        assert item["reason"]


@pytest.mark.parametrize("ranker", ["", "tfidf", "latest", "popular", "learned"])
def test_explained_parts_sum_to_each_items_score(client, tokens, reader, ranker):
    page = explained(client, tokens, f"&ranker={ranker}" if ranker else "")
    assert page["ranker"] == (ranker or "tfidf")
    assert page["next_cursor"] is None
    assert_explained(page)


def test_the_explained_order_is_the_feeds_order(client, tokens, reader):
    feed = client.get("/v1/users/ann/feed?limit=20", headers=tokens.user("ann")).json
    page = explained(client, tokens, "&limit=20")
    assert [i["id"] for i in page["items"]] == [i["id"] for i in feed["items"]]
    assert [i["reason"] for i in page["items"]] == [i["reason"] for i in feed["items"]]
    assert [i["score"] for i in page["items"]] == pytest.approx([i["score"] for i in feed["items"]])
    names = {p["name"] for i in page["items"] for p in i["explain"]["parts"]}
    assert names == {"follow_similarity", "follow_bonus", "history"}
    assert any(
        p["value"] > 0
        for i in page["items"]
        for p in i["explain"]["parts"]
        if p["name"] == "history"
    )


def test_learned_explains_its_features_and_keeps_the_learned_order(
    client, tokens, reader, redis_client
):
    learned_store.publish(
        redis_client, linear({"follow_score": 1.2, "history_pull": 0.7, "freshness": 0.5})
    )
    page = explained(client, tokens, "&ranker=learned&limit=20")
    assert_explained(page)
    names = {p["name"] for i in page["items"] for p in i["explain"]["parts"]}
    assert {"baseline", "follow_score", "freshness"} <= names
    # The same reader served by learned (nearly everyone is on its variant) ranks so too.
    experiment = {
        "name": "all-learned",
        "variants": [
            {"name": "control", "ranker": "tfidf", "params": {}, "weight": 1},
            {"name": "learned", "ranker": "learned", "params": {}, "weight": 9999},
        ],
        "traffic": 1.0,
    }
    admin = tokens.admin()
    assert client.post("/v1/experiments", json=experiment, headers=admin).status_code == 201
    assert client.post("/v1/experiments/all-learned/start", headers=admin).status_code == 200
    feed = client.get("/v1/users/ann/feed?limit=20", headers=tokens.user("ann")).json
    served = explained(client, tokens, "&limit=20")
    assert served["ranker"] == "learned" and served["experiment"] == "all-learned"
    assert [i["id"] for i in served["items"]] == [i["id"] for i in feed["items"]]
    assert [i["id"] for i in served["items"]] == [i["id"] for i in page["items"]]


def test_explaining_records_no_exposure_and_caches_nothing(client, tokens, reader, redis_client):
    admin = tokens.admin()
    assert client.post("/v1/experiments", json=EXPERIMENT, headers=admin).status_code == 201
    assert client.post("/v1/experiments/inspect-me/start", headers=admin).status_code == 200
    active_before = redis_client.zscore(activity.ACTIVE_KEY, "bob")
    for _ in range(3):
        response = client.get("/v1/users/bob/feed?explain=true", headers=admin)
        assert response.status_code == 200
        assert response.json["experiment"] == "inspect-me"
    results = client.get("/v1/experiments/inspect-me/results", headers=admin).json
    assert sum(v["users"] for v in results["variants"]) == 0
    assert sum(v["pages"] for v in results["variants"]) == 0
    assert redis_client.zscore(activity.ACTIVE_KEY, "bob") == active_before
    assert redis_client.exists(cache.FEED_KEY % "bob", cache.PAGE_KEY % "bob") == 0
    # The reader's own first page is built for them, not served from the inspector's build.
    own = client.get("/v1/users/bob/feed", headers=tokens.user("bob"))
    assert own.headers["X-Feed-Cache"] == "miss"


@pytest.mark.parametrize("query", ["?explain=true", "?explain=true&ranker=latest"])
def test_a_reader_asking_for_an_explanation_gets_403(client, tokens, reader, query):
    response = client.get(f"/v1/users/ann/feed{query}", headers=tokens.user("ann"))
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("?ranker=latest", 400),
        ("?explain=true&cursor=abc", 400),
        ("?explain=true&ranker=nope", 422),
        ("?explain=maybe", 422),
    ],
)
def test_explain_options_are_checked(client, tokens, reader, query, status):
    response = client.get(f"/v1/users/ann/feed{query}", headers=tokens.admin())
    assert response.status_code == status, response.json
    assert response.json["error"]["status"] == status


def test_an_admin_still_gets_only_their_own_plain_feed(client, tokens, reader):
    assert client.get("/v1/users/ann/feed", headers=tokens.admin()).status_code == 403


def test_the_reader_profile_shows_follows_and_last_reads(client, tokens, reader):
    response = client.get("/v1/users/ann/profile?reads=2", headers=tokens.admin())
    assert response.status_code == 200, response.json
    profile = response.json
    assert profile["categories"] == ["science", "tech"]
    assert profile["reads_total"] == 3 and len(profile["reads"]) == 2
    assert all(r["title"] and r["at"].endswith("Z") for r in profile["reads"])
    assert client.get("/v1/users/ann/profile", headers=tokens.user("ann")).status_code == 403


def test_a_new_reader_is_explained_as_the_latest_articles(client, tokens, reader):
    admin = tokens.admin()
    profile = client.get("/v1/users/newcomer/profile", headers=admin).json
    assert profile == {"user_id": "newcomer", "categories": [], "reads": [], "reads_total": 0}
    page = client.get("/v1/users/newcomer/feed?explain=true&limit=5", headers=admin).json
    assert_explained(page)
    assert all([p["name"] for p in i["explain"]["parts"]] == ["freshness"] for i in page["items"])
    assert all(i["reason"].startswith("Latest in ") for i in page["items"])
