"""A store written under the key layout before Redis Cluster support is moved, not lost."""

from __future__ import annotations

import re

from feed import experiments
from feed.experiments.assignment import Experiment, Variant, assign
from feed.model.migrate import upgrade
from tests.factories import demo_corpus

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
    (re.compile(r"nf:\{corpus\}:article:(.+):body"), "nf:article:{%s}:body"),
    (re.compile(r"nf:\{corpus\}:article:(.+)"), "nf:article:{%s}"),
    (re.compile(r"nf:\{corpus\}:url:(.+)"), "nf:url:%s"),
    (re.compile(r"nf:model:\{(\d+)\}:meta"), "nf:model:%s:meta"),
    (re.compile(r"nf:model:\{(\d+)\}"), "nf:model:%s"),
]


def to_old_layout(r) -> None:
    """Rename every current key to the name the previous release gave it."""
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
    before = sorted(redis_client.scan_iter(count=1000))
    assert upgrade(redis_client) == 0
    assert sorted(redis_client.scan_iter(count=1000)) == before
