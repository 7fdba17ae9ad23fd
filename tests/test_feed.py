"""The ranked feed as a reader sees it: what is in it, in what order, page after page."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.factories import demo_corpus, whole_feed


def follow(client, headers, user, *slugs):
    response = client.put(
        f"/v1/users/{user}/categories", json={"categories": list(slugs)}, headers=headers
    )
    assert response.status_code == 200


def test_someone_who_follows_nothing_gets_the_latest_across_categories(client, tokens):
    articles = demo_corpus(client, tokens.admin(), 300)
    response = client.get("/v1/users/newbie/feed?limit=20", headers=tokens.user("newbie"))
    assert response.status_code == 200
    items = response.json["items"]
    assert len(items) == 20
    newest = sorted(articles, key=lambda a: a["published_at"], reverse=True)[:20]
    assert [i["published_at"] for i in items] == [a["published_at"] for a in newest]
    assert len({i["categories"][0] for i in items}) > 3
    assert all(i["reason"].startswith("Latest in ") for i in items)


def test_feed_items_carry_the_contract_fields(client, tokens):
    demo_corpus(client, tokens.admin(), 100)
    alice = tokens.user("alice")
    follow(client, alice, "alice", "syria")
    item = client.get("/v1/users/alice/feed?limit=1", headers=alice).json["items"][0]
    assert set(item) >= {
        "id",
        "title",
        "url",
        "summary",
        "categories",
        "published_at",
        "source",
        "score",
        "reason",
    }
    assert item["published_at"].endswith("Z")
    assert item["reason"] == "Because you follow Syria"


def test_followed_categories_are_or_ed(client, tokens):
    articles = demo_corpus(client, tokens.admin(), 400)
    alice = tokens.user("alice")
    follow(client, alice, "alice", "syria", "tech")
    feed_ids = {i["id"] for i in whole_feed(client, "alice", alice)}
    followed = {a["id"] for a in articles if {"syria", "tech"} & set(a["categories"])}
    assert followed <= feed_ids, "every article of either followed category is in the feed"
    first_page = client.get("/v1/users/alice/feed?limit=20", headers=alice).json["items"]
    assert {"syria", "tech"} <= {c for i in first_page for c in i["categories"]}


@pytest.mark.parametrize(
    "follows",
    [
        ("syria",),
        ("tech", "business"),
        ("middle-east", "israel-hamas-war"),
        ("climate",),
        ("sports", "health", "culture"),
    ],
)
@pytest.mark.parametrize("limit", [20, 100])
def test_at_least_90_percent_of_the_first_page_is_from_followed_categories(
    client, tokens, follows, limit
):
    demo_corpus(client, tokens.admin(), 1500)
    user = tokens.user("reader")
    follow(client, user, "reader", *follows)
    items = client.get(f"/v1/users/reader/feed?limit={limit}", headers=user).json["items"]
    assert len(items) == limit
    inside = [i for i in items if set(follows) & set(i["categories"])]
    assert len(inside) >= 0.9 * limit
    for item in items:
        if item not in inside:
            assert item["reason"].startswith("Related to ")


def test_no_article_appears_twice_across_all_pages(client, tokens):
    demo_corpus(client, tokens.admin(), 500)
    alice = tokens.user("alice")
    follow(client, alice, "alice", "middle-east", "syria", "world")
    items = whole_feed(client, "alice", alice, limit=7)
    ids = [i["id"] for i in items]
    assert len(ids) > 50
    assert [i for i, n in Counter(ids).items() if n > 1] == []


def test_scores_descend_within_followed_items(client, tokens):
    demo_corpus(client, tokens.admin(), 300)
    alice = tokens.user("alice")
    follow(client, alice, "alice", "business")
    items = client.get("/v1/users/alice/feed?limit=50", headers=alice).json["items"]
    scores = [i["score"] for i in items if "business" in i["categories"]]
    assert scores == sorted(scores, reverse=True)


def test_first_visit_misses_then_every_page_hits(client, tokens):
    demo_corpus(client, tokens.admin(), 200)
    alice = tokens.user("alice")
    follow(client, alice, "alice", "tech")
    first = client.get("/v1/users/alice/feed?limit=5", headers=alice)
    assert first.headers["X-Feed-Cache"] == "miss"
    again = client.get("/v1/users/alice/feed?limit=5", headers=alice)
    assert again.headers["X-Feed-Cache"] == "hit"
    assert again.json["items"] == first.json["items"]
    assert again.json["next_cursor"] == first.json["next_cursor"]
    page2 = client.get(
        f"/v1/users/alice/feed?limit=5&cursor={first.json['next_cursor']}", headers=alice
    )
    assert page2.headers["X-Feed-Cache"] == "hit"
    assert not {i["id"] for i in page2.json["items"]} & {i["id"] for i in first.json["items"]}


def test_the_last_page_has_no_next_cursor(client, tokens):
    demo_corpus(client, tokens.admin(), 40)
    items = whole_feed(client, "bob", tokens.user("bob"), limit=100)
    assert len(items) == 40


def test_pages_of_different_sizes_agree(client, tokens):
    demo_corpus(client, tokens.admin(), 200)
    alice = tokens.user("alice")
    follow(client, alice, "alice", "health", "science")
    five = client.get("/v1/users/alice/feed?limit=5", headers=alice).json["items"]
    twelve = client.get("/v1/users/alice/feed?limit=12", headers=alice).json["items"]
    again = client.get("/v1/users/alice/feed?limit=5", headers=alice)
    assert [i["id"] for i in twelve[:5]] == [i["id"] for i in five]
    assert len(twelve) == 12
    assert again.headers["X-Feed-Cache"] == "hit" and again.json["items"] == five


def test_a_feed_whose_articles_were_all_deleted_is_empty_not_an_error(client, tokens):
    admin, alice = tokens.admin(), tokens.user("alice")
    articles = demo_corpus(client, admin, 30)
    follow(client, alice, "alice", "syria")
    for article in articles:
        assert client.delete(f"/v1/articles/{article['id']}", headers=admin).status_code == 204
    response = client.get("/v1/users/alice/feed?limit=10", headers=alice)
    assert response.status_code == 200
    assert response.json["items"] == [] and response.json["next_cursor"] is None
