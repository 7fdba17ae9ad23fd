"""Reader events: per-event acceptance, the durable stream, and what history does to feeds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from feed.readers.events import stream_entries
from tests.factories import demo_corpus


@pytest.fixture
def corpus(client, tokens):
    return demo_corpus(client, tokens.admin(), 300)


def send(client, headers, *events):
    return client.post("/v1/events", json={"events": list(events)}, headers=headers)


def event(kind, article_id, user="alice", **extra):
    return {"type": kind, "user_id": user, "article_id": article_id, **extra}


def feed(client, headers, user="alice", limit=20):
    response = client.get(f"/v1/users/{user}/feed?limit={limit}", headers=headers)
    assert response.status_code == 200
    return response


def test_events_are_accepted_one_by_one(client, tokens, corpus, redis_client):
    alice = tokens.user("alice")
    first = corpus[0]["id"]
    response = send(
        client,
        alice,
        event("impression", first, feed_id="f1", position=0),
        event("teleport", first),
        event("click", "no-such-article"),
        event("click", first, feed_id="f1", position=0, dwell_ms=1200),
    )
    assert response.status_code == 202
    assert response.json["accepted"] == 2
    rejected = {r["index"]: r for r in response.json["rejected"]}
    assert rejected[1]["reason"] == "invalid" and "type" in rejected[1]["message"]
    assert rejected[2] == {
        "index": 2,
        "reason": "unknown_article",
        "message": "article 'no-such-article' does not exist",
    }
    entries = stream_entries(redis_client)
    assert [e["type"] for e in entries] == ["click", "impression"]
    assert entries[0]["feed_id"] == "f1" and entries[0]["dwell_ms"] == "1200"


def test_events_for_another_user_refuse_the_whole_batch(client, tokens, corpus, redis_client):
    alice = tokens.user("alice")
    response = send(
        client, alice, event("click", corpus[0]["id"]), event("click", corpus[1]["id"], user="bob")
    )
    assert response.status_code == 403
    assert stream_entries(redis_client) == []


def test_events_need_a_token(client, corpus):
    assert send(client, {}, event("click", corpus[0]["id"])).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"events": []},
        {"events": [event("click", "x")] * 501},
        {"events": "nope"},
        {"events": [], "extra": 1},
    ],
)
def test_bad_batches_are_422(client, tokens, body):
    response = client.post("/v1/events", json=body, headers=tokens.user("alice"))
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"


@pytest.mark.parametrize(
    "ts",
    [
        (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        (datetime.now(UTC) - timedelta(days=30)).isoformat(),
        "yesterday",
    ],
)
def test_bad_timestamps_are_rejected_individually(client, tokens, corpus, ts):
    response = send(client, tokens.user("alice"), event("click", corpus[0]["id"], ts=ts))
    assert response.status_code == 202
    assert response.json["accepted"] == 0
    assert "ts" in response.json["rejected"][0]["message"]


def test_every_feed_response_has_its_own_feed_id(client, tokens, corpus):
    alice = tokens.user("alice")
    first, second = feed(client, alice).json, feed(client, alice).json
    assert first["feed_id"] != second["feed_id"]
    assert first["items"] == second["items"]
    assert first["experiment"] is None and first["variant"] is None


def test_a_hidden_article_never_comes_back(client, tokens, corpus):
    alice = tokens.user("alice")
    client.put("/v1/users/alice/categories/tech", headers=alice)
    first = feed(client, alice, limit=10).json
    hidden = first["items"][0]["id"]
    later_page_hidden = first["items"][5]["id"]
    send(client, alice, event("hide", hidden), event("hide", later_page_hidden))
    again = feed(client, alice, limit=10)
    assert again.headers["X-Feed-Cache"] == "miss"
    ids = [i["id"] for i in again.json["items"]]
    assert hidden not in ids and later_page_hidden not in ids
    assert len(ids) == 10


def test_a_hidden_article_is_skipped_on_pages_of_an_older_list(client, tokens, corpus):
    alice = tokens.user("alice")
    client.put("/v1/users/alice/categories/tech", headers=alice)
    first = feed(client, alice, limit=5).json
    page2 = client.get(
        f"/v1/users/alice/feed?limit=5&cursor={first['next_cursor']}", headers=alice
    ).json["items"]
    send(client, alice, event("hide", page2[0]["id"]))
    again = client.get(
        f"/v1/users/alice/feed?limit=5&cursor={first['next_cursor']}", headers=alice
    ).json["items"]
    assert page2[0]["id"] not in [i["id"] for i in again]
    assert len(again) == 5


def test_read_articles_leave_the_feed(client, tokens, corpus):
    alice = tokens.user("alice")
    client.put("/v1/users/alice/categories/business", headers=alice)
    top = feed(client, alice).json["items"][0]["id"]
    send(client, alice, event("read", top, dwell_ms=30_000))
    assert top not in [i["id"] for i in feed(client, alice, limit=100).json["items"]]


def test_impressions_do_not_invalidate_the_cache(client, tokens, corpus):
    alice = tokens.user("alice")
    items = feed(client, alice).json["items"]
    send(client, alice, *(event("impression", i["id"]) for i in items))
    assert feed(client, alice).headers["X-Feed-Cache"] == "hit"


def test_clicks_shape_the_profile(client, tokens, corpus):
    """A reader following nothing who reads climate stories gets more climate stories."""
    alice = tokens.user("alice")
    climate = [a["id"] for a in corpus if a["categories"][0] == "climate"][:5]
    send(client, alice, *(event("click", i) for i in climate))
    items = feed(client, alice).json["items"]
    in_climate = [i for i in items if "climate" in i["categories"]]
    assert len(in_climate) >= 0.6 * len(items)
    titles = {a["title"] for a in corpus if a["id"] in climate}
    reason = items[0]["reason"]  # the read it resembles (its title, cut if long), or the category
    quoted = reason.removeprefix("Because you read ‘").removesuffix("’").removesuffix("…")
    named = any(t.startswith(quoted) for t in titles)
    assert named or reason == "Like articles you read in Climate"
    assert not set(climate) & {i["id"] for i in items}


def test_history_is_blended_with_follows(client, tokens, corpus):
    """Same follows, different reading: each reader's feed leans toward what they read."""
    shares = {}
    for user, read_category in (("alice", "tech"), ("bob", "sports")):
        headers = tokens.user(user)
        client.put(
            f"/v1/users/{user}/categories", json={"categories": ["tech", "sports"]}, headers=headers
        )
        # The oldest stories of the category: their leaving the feed changes no top page.
        oldest = [a["id"] for a in corpus if a["categories"] == [read_category]][:6]
        send(client, headers, *(event("read", i, user=user) for i in oldest))
        items = feed(client, headers, user=user, limit=20).json["items"]
        shares[user] = sum("tech" in i["categories"] for i in items) / len(items)
    assert shares["alice"] > shares["bob"]


def test_items_moved_by_reading_say_which_read_they_resemble(client, tokens, corpus):
    alice = tokens.user("alice")
    client.put("/v1/users/alice/categories/world", headers=alice)
    client.put("/v1/users/alice/categories/tech", headers=alice)
    world = [a for a in corpus if a["categories"][0] == "world"][-8:]
    send(client, alice, *(event("click", a["id"]) for a in world))
    items = feed(client, alice).json["items"]
    moved = [i["reason"] for i in items if i["reason"].startswith("Because you read ‘")]
    assert moved
    for reason in moved:  # the read's title, cut with an ellipsis when long
        quoted = reason.removeprefix("Because you read ‘").removesuffix("’").removesuffix("…")
        assert any(a["title"].startswith(quoted) for a in world), reason
    assert any(i["reason"] == "Because you follow Tech" for i in items)
    # A read since deleted still explains the item, by the category it was read in.
    for a in world:
        client.delete(f"/v1/articles/{a['id']}", headers=tokens.admin())
    reasons = {i["reason"] for i in feed(client, alice).json["items"]}
    assert not any(r.startswith("Because you read") for r in reasons)
