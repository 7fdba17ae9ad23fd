"""A store written under the key layout before Redis Cluster support is moved, not lost."""

from __future__ import annotations

import json
import logging
import re
import threading

import pytest

from feed import experiments
from feed.corpus import articles
from feed.experiments.assignment import Experiment, Variant, assign
from feed.model.migrate import LAYOUT_KEY, upgrade
from feed.storage.connection import open_redis
from tests.factories import article, demo_corpus, ingest

FEED = "/v1/users/alice/feed?limit=10"

# The old names, as the previous release wrote them.
_OLD_FIXED = {
    "nf:{corpus}:by_time": "nf:articles:by_time",
    "nf:{corpus}:deleted": "nf:corpus:deleted",
    "nf:{corpus}:version": "nf:corpus:version",
    "nf:{corpus}:model": "nf:model:current",
    "nf:{corpus}:categories": "nf:categories",
    "nf:{corpus}:categories:counts": "nf:categories:counts",
    "nf:{corpus}:experiments": "nf:experiments",
    "nf:{corpus}:experiments:running": "nf:experiments:running",
    "nf:{sources}": "nf:sources",
}
_OLD_FAMILIES = [
    (re.compile(r"nf:\{corpus\}:body:(.+)"), "nf:article:{%s}:body"),
    (re.compile(r"nf:\{corpus\}:article:(.+)"), "nf:article:{%s}"),
    (re.compile(r"nf:\{corpus\}:url:(.+)"), "nf:url:%s"),
    (re.compile(r"nf:model:\{(\d+)\}:meta"), "nf:model:%s:meta"),
    (re.compile(r"nf:model:\{(\d+)\}"), "nf:model:%s"),
]


def to_old_layout(r) -> None:
    """Rename every current key to the name 0.1 gave it."""
    r.delete(LAYOUT_KEY)
    for raw in list(r.scan_iter(count=1000)):
        key = raw.decode()
        if key in _OLD_FIXED:
            r.rename(key, _OLD_FIXED[key])
            continue
        for pattern, old in _OLD_FAMILIES:
            match = pattern.fullmatch(key)
            if match:
                r.rename(key, old % match[1])
                break
    # One counters hash per experiment then; the shards fold back into it.
    for raw in list(r.scan_iter(match="nf:exp:{*:*}:counts")):
        name = raw.decode().split("{")[1].split(":")[0]
        for field, value in r.hgetall(raw).items():
            r.hincrby(f"nf:exp:{{{name}}}:counts", field, int(value))
        r.delete(raw)


def test_an_old_store_is_moved_to_the_current_layout(client, tokens, services, redis_client):
    admin, alice = tokens.admin(), tokens.user("alice")
    demo_corpus(client, admin, 120)
    client.put("/v1/users/alice/categories/syria", headers=alice)
    variants = (Variant("control", "tfidf", {}, 1.0), Variant("fresh", "latest", {}, 1.0))
    experiment = Experiment("ab", variants, 1.0, "ab")
    experiments.create(redis_client, experiment)
    started = experiments.start(redis_client, "ab")
    placed = assign([started], "bob")
    assert placed is not None
    experiments.record_exposure(redis_client, placed, "bob")
    page = client.get(FEED, headers=alice)
    article_id = page.json["items"][0]["id"]
    article = client.get(f"/v1/articles/{article_id}").json
    catalog = client.get("/v1/categories").json
    counts = experiments.counts(redis_client, "ab")

    # As on an upgrade, nothing of the new version runs before the move: a model keeper seeing
    # the empty new layout would fit and publish an empty model first.
    services.keeper.stop()
    to_old_layout(redis_client)
    assert client.get(f"/v1/articles/{article_id}").status_code == 404  # invisible until moved

    moved = upgrade(redis_client)
    assert moved > 120 * 3  # cards, bodies and URLs, at least
    services.keeper.start()
    assert client.get(f"/v1/articles/{article_id}").json == article
    assert client.get("/v1/categories").json == catalog
    assert experiments.counts(redis_client, "ab") == counts
    again = client.get(FEED, headers=alice)
    assert again.status_code == 200
    assert [i["id"] for i in again.json["items"]] == [i["id"] for i in page.json["items"]]
    assert upgrade(redis_client) == 0  # idempotent: nothing old is left


def test_a_current_store_is_left_alone(client, tokens, redis_client):
    demo_corpus(client, tokens.admin(), 20)
    ingest(client, tokens.admin(), [article(id="a"), article(id="a:body")])
    before = snapshot(redis_client)
    assert upgrade(redis_client) == 0
    assert snapshot(redis_client) == before


def snapshot(r) -> dict[bytes, bytes | None]:
    """Every string key and its value, but the layout marker."""
    keys = sorted(k for k in r.scan_iter(count=1000) if k != LAYOUT_KEY.encode())
    return {k: r.get(k) if r.type(k) == b"string" else None for k in keys}


# -- bodies apart from cards: before, the body of "x" was also the card of "x:body"

TAGGED_BODY = "nf:{corpus}:article:%s:body"


def to_tagged_layout(r) -> None:
    """Move every body back to where the release before the split kept it."""
    r.delete(LAYOUT_KEY)
    for raw in list(r.scan_iter(match="nf:{corpus}:body:*", count=1000)):
        article_id = raw.decode().removeprefix("nf:{corpus}:body:")
        r.rename(raw, TAGGED_BODY % article_id)


@pytest.mark.parametrize("redis_url", ["single", "cluster"], indirect=True)
def test_a_store_from_before_the_split_keeps_every_card_and_body(
    client, tokens, services, redis_client
):
    admin, alice = tokens.admin(), tokens.user("alice")
    planted = article(id="vic:body", categories=["world"])  # as a card, with its url unchecked
    special = [
        article(id="x", categories=["world"]),
        article(id="y:body", categories=["world"]),  # only the card shared a name
        article(id="vic", categories=["world"], body=json.dumps(planted)),
        article(id="L" * 124, categories=["world"]),  # "<id>:body" would be too long an id
    ]
    demo = demo_corpus(client, admin, 60)
    ingest(client, admin, special)
    client.put("/v1/users/alice/categories/world", headers=alice)
    stored = [a["id"] for a in [*demo, *special]]
    before = {i: client.get(f"/v1/articles/{i}").json for i in stored}
    page = client.get("/v1/users/alice/feed?limit=50", headers=alice).json

    services.keeper.stop()  # nothing of the new version runs before the move
    to_tagged_layout(redis_client)
    assert client.get("/v1/articles/x").json["body"] == ""  # the body is not where it was

    assert upgrade(redis_client) == len(stored)  # every body moved, every card left
    services.keeper.start()
    assert {i: client.get(f"/v1/articles/{i}").json for i in stored} == before
    for phantom in ("x:body", "vic:body", "y"):
        assert client.get(f"/v1/articles/{phantom}").status_code == 404
    assert client.get("/v1/users/alice/feed?limit=50", headers=alice).json["items"] == page["items"]

    current = snapshot(redis_client)
    assert upgrade(redis_client) == 0
    redis_client.delete(LAYOUT_KEY)  # as if the marker were lost: the scan changes nothing
    assert upgrade(redis_client) == 0
    assert snapshot(redis_client) == current


@pytest.mark.parametrize("written_last", ["a", "a:body"])
def test_where_both_ids_were_stored_the_one_written_last_keeps_the_key(
    client, tokens, redis_client, written_last, caplog
):
    """Before the split, "a" and "a:body" shared a key: one of them lost its body or card."""
    first, twin = article(id="a", body="A's body."), article(id="a:body", body="The twin's body.")
    ingest(client, tokens.admin(), [first, twin])
    twin_card = redis_client.get(articles.CARD_KEY % "a:body")
    to_tagged_layout(redis_client)  # a's body renamed onto the twin's card: "a" written last
    if written_last == "a:body":  # the twin's card overwrote a's body
        redis_client.set(TAGGED_BODY % "a", twin_card)

    with caplog.at_level(logging.WARNING, logger="feed.model.migrate"):
        assert upgrade(redis_client) == (2 if written_last == "a" else 1)
    if written_last == "a":
        assert client.get("/v1/articles/a").json["body"] == "A's body."
        assert client.get("/v1/articles/a:body").status_code == 404
        assert "the card of a:body had been overwritten" in caplog.text
    else:
        assert client.get("/v1/articles/a").json["body"] == ""
        assert client.get("/v1/articles/a:body").json["body"] == "The twin's body."
        assert "the body of a had been overwritten" in caplog.text


def test_two_processes_moving_one_store_at_once_move_each_body_once(
    client, tokens, redis_client, redis_url
):
    demo = demo_corpus(client, tokens.admin(), 300)
    before = {a["id"]: client.get(f"/v1/articles/{a['id']}").json for a in demo[:20]}
    to_tagged_layout(redis_client)
    moved: list[int] = []

    def run() -> None:
        own = open_redis(redis_url, socket_timeout=5, connect_timeout=5)
        moved.append(upgrade(own))
        own.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(moved) == len(demo)
    assert {i: client.get(f"/v1/articles/{i}").json for i in before} == before
    assert not list(redis_client.scan_iter(match=TAGGED_BODY % "*"))
    assert articles.count(redis_client) == len(demo)


def test_an_app_started_on_a_store_from_before_the_split_moves_it_first(
    client, tokens, services, redis_client, make_app
):
    """Started as gunicorn starts it (no `newsfeed serve`), the service upgrades the store."""
    ingest(client, tokens.admin(), [article(id="x", body="X's body.")])
    services.keeper.stop()
    to_tagged_layout(redis_client)

    upgraded = make_app().test_client()
    assert upgraded.get("/v1/articles/x").json["body"] == "X's body."
    assert int(redis_client.get(LAYOUT_KEY)) >= 2
