"""Breaking news: a written article reaches feeds at once, before any refit, in every process."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from devtools.demo import generate_articles
from feed.model import breaking, versions
from feed.model import store as model_store
from feed.model.reindex import reindex
from feed.services import Services
from tests.conftest import Tokens
from tests.factories import article, whole_feed

# Every test here runs on one redis-server and on a three-master cluster.
pytestmark = pytest.mark.parametrize("redis_url", ["single", "cluster"], indirect=True)

WINDOW_DAYS = 30.0


@pytest.fixture
def app(make_app: Any) -> Flask:
    """No refit happens unless a test runs one: what reaches a feed got there without it."""
    app: Flask = make_app(auto_reindex=False)
    return app


@pytest.fixture
def corpus(client: FlaskClient, tokens: Tokens, services: Services) -> list[dict[str, Any]]:
    """300 demo articles and a model fitted on them."""
    articles = generate_articles(300)
    post(client, tokens, *articles)
    reindex(services.redis, live_window_days=WINDOW_DAYS)
    return articles


def post(client: FlaskClient, tokens: Tokens, *articles: dict[str, Any]) -> None:
    response = client.post(
        "/v1/articles", json={"articles": list(articles)}, headers=tokens.admin()
    )
    assert response.status_code == 200 and not response.json["rejected"], response.json


def new_category(client: FlaskClient, tokens: Tokens, slug: str, name: str) -> None:
    """A category no article (so no model) has yet, that readers can follow."""
    response = client.put(f"/v1/categories/{slug}", json={"name": name}, headers=tokens.admin())
    assert response.status_code == 201


def follow(client: FlaskClient, tokens: Tokens, user: str, *slugs: str) -> dict[str, str]:
    headers = tokens.user(user)
    response = client.put(
        f"/v1/users/{user}/categories", json={"categories": list(slugs)}, headers=headers
    )
    assert response.status_code == 200
    return headers


def first_page(
    client: FlaskClient, user: str, headers: dict[str, str], limit: int = 20
) -> tuple[str, list[dict[str, Any]]]:
    """The cache header and the items of the user's first page."""
    response = client.get(f"/v1/users/{user}/feed?limit={limit}", headers=headers)
    assert response.status_code == 200, response.json
    return response.headers["X-Feed-Cache"], response.json["items"]


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [i["id"] for i in items]


def news(article_id: str, slug: str, **fields: Any) -> dict[str, Any]:
    """A story published just now."""
    return article(
        id=article_id,
        categories=[slug],
        age_hours=0,
        title=f"Breaking: {slug} story {article_id}",
        summary=f"Officials confirmed the {slug} news this morning.",
        **fields,
    )


def published_model(services: Services) -> int:
    return versions.read(services.redis).model


def test_a_new_article_is_on_its_followers_next_first_page_without_a_refit(
    client, tokens, services, corpus
):
    alice = follow(client, tokens, "alice", "syria")
    assert first_page(client, "alice", alice)[0] == "miss"
    assert first_page(client, "alice", alice)[0] == "hit"
    model = published_model(services)

    post(client, tokens, news("breaking", "syria"))
    cache, items = first_page(client, "alice", alice)
    assert cache == "miss"
    assert "breaking" in ids(items)
    assert items[ids(items).index("breaking")]["reason"] == "Because you follow Syria"
    # No refit: the published model is the one fitted before the write.
    assert published_model(services) == model
    ready = client.get("/readyz").json
    assert ready["model_corpus_version"] < ready["corpus_version"]
    # The page built with the article is the cached one.
    assert first_page(client, "alice", alice) == ("hit", items)


def test_an_updated_article_ranks_with_its_new_text_and_categories(
    client, tokens, services, corpus
):
    alice = follow(client, tokens, "alice", "syria")
    bob = follow(client, tokens, "bob", "tech")
    moved = next(a for a in reversed(corpus) if a["categories"] == ["tech"])
    assert moved["id"] in ids(whole_feed(client, "bob", bob))
    base = services.keeper.model_for(published_model(services)).model
    base_row = base.vectors[base.row_of[moved["id"]]]

    update = {
        **moved,
        "categories": ["syria"],
        "title": "Syria ceasefire talks resume in Damascus",
        "summary": "Syrian officials and opposition envoys met in Damascus.",
        "body": "Envoys in Damascus discussed a ceasefire across northern Syria.",
    }
    post(client, tokens, update)
    _, items = first_page(client, "alice", alice, limit=100)
    assert moved["id"] in ids(items)
    assert items[ids(items).index(moved["id"])]["reason"] == "Because you follow Syria"
    assert all(
        i["reason"] != "Because you follow Tech"
        for i in whole_feed(client, "bob", bob)
        if i["id"] == moved["id"]
    )
    # The row ranked is the new text's, vectorised with the published model's vocabulary.
    loaded = services.keeper.loaded
    assert loaded is not None and loaded.meta.version == published_model(services)
    row = loaded.model.vectors[loaded.model.row_of[moved["id"]]]
    text = f"{update['title']}\n{update['summary']}\n{update['body']}"
    assert abs(row - loaded.model.vectorize([text])).max() < 1e-6
    assert abs(row - base_row).max() > 0.1


def test_an_article_in_a_category_the_model_does_not_know_is_ranked_in_it(
    client, tokens, services, corpus
):
    new_category(client, tokens, "space-race", "Space Race")
    carol = follow(client, tokens, "carol", "space-race")
    first_page(client, "carol", carol)
    post(client, tokens, news("moon", "space-race"))
    _, items = first_page(client, "carol", carol)
    assert ids(items)[0] == "moon"
    assert items[0]["reason"] == "Because you follow Space Race"


def test_another_process_sees_the_article_too(client, tokens, services, corpus, make_app):
    other: FlaskClient = make_app(auto_reindex=False).test_client()
    alice = follow(client, tokens, "alice", "syria")
    for app_client in (client, other):
        first_page(app_client, "alice", alice)
    post(client, tokens, news("breaking", "syria"))  # through the first app only
    cache, items = first_page(other, "alice", alice)
    assert cache == "miss" and "breaking" in ids(items)
    bob = follow(client, tokens, "bob", "syria")
    assert "breaking" in ids(first_page(other, "bob", bob)[1])


def test_a_deleted_article_still_leaves_at_once(client, tokens, services, corpus, make_app):
    other: FlaskClient = make_app(auto_reindex=False).test_client()
    alice = follow(client, tokens, "alice", "syria")
    post(client, tokens, news("breaking", "syria"))
    for app_client in (client, other):
        assert "breaking" in ids(first_page(app_client, "alice", alice)[1])
    assert client.delete("/v1/articles/breaking", headers=tokens.admin()).status_code == 204
    for app_client in (client, other):
        cache, items = first_page(app_client, "alice", alice)
        assert "breaking" not in ids(items) and len(items) == 20
    # Written again under the same id, it is back.
    post(client, tokens, news("breaking", "syria"))
    assert "breaking" in ids(first_page(other, "alice", alice)[1])


def test_a_later_refit_gives_the_same_membership(client, tokens, services, corpus):
    new_category(client, tokens, "space-race", "Space Race")
    readers = {"alice": ("syria",), "bob": ("tech",), "carol": ("space-race",)}
    headers = {user: follow(client, tokens, user, *slugs) for user, slugs in readers.items()}
    moved = next(a for a in reversed(corpus) if a["categories"] == ["tech"])
    post(
        client,
        tokens,
        news("breaking", "syria"),
        news("moon", "space-race"),
        news("gadget", "tech"),
        {**moved, "categories": ["syria"]},
    )

    def followed_items() -> dict[str, set[str]]:
        return {
            user: {
                item["id"]
                for item in whole_feed(client, user, headers[user])
                if set(item["categories"]) & set(slugs)
            }
            for user, slugs in readers.items()
        }

    extended = followed_items()
    assert {"breaking", moved["id"]} <= extended["alice"]
    assert extended["carol"] == {"moon"}
    assert "gadget" in extended["bob"] and moved["id"] not in extended["bob"]
    reindex(services.redis, live_window_days=WINDOW_DAYS)
    assert followed_items() == extended


def test_past_the_budget_feeds_wait_for_the_refit_uncached(
    client, tokens, services, corpus, monkeypatch
):
    monkeypatch.setattr(breaking, "MAX_CHANGES", 3)
    alice = follow(client, tokens, "alice", "syria")
    first_page(client, "alice", alice)
    post(client, tokens, *(news(f"bulk-{n}", "syria") for n in range(5)))
    # Too many to vectorise here: ranked without them, and never cached without them.
    for _ in range(2):
        cache, items = first_page(client, "alice", alice)
        assert cache == "miss" and not any(i.startswith("bulk-") for i in ids(items))
    reindex(services.redis, live_window_days=WINDOW_DAYS)
    cache, items = first_page(client, "alice", alice)
    assert cache == "miss" and {f"bulk-{n}" for n in range(5)} <= set(ids(items))
    assert first_page(client, "alice", alice)[0] == "hit"


def test_a_refit_trims_the_change_log_to_what_the_replaced_model_lacks(
    client, tokens, services, corpus
):
    r = services.redis
    post(client, tokens, news("one", "syria"))
    fitted = model_store.current_meta(r)
    assert fitted is not None
    reindex(r, live_window_days=WINDOW_DAYS)
    post(client, tokens, news("two", "syria"))
    reindex(r, live_window_days=WINDOW_DAYS)
    # The model before the last fit holds everything up to "one": only "two" is left.
    assert [i.decode() for i in r.zrange(versions.CHANGES_KEY, 0, -1)] == ["two"]
    changes = versions.changes_since(r, 0, 100)
    assert not changes.complete
    assert versions.changes_since(r, fitted.corpus_version + 1, 100).complete


def test_writes_racing_feed_builds_and_refits_are_never_missed(
    client, tokens, services, corpus, make_app
):
    """Each acknowledged write is on the next first page of both processes, cached or not,
    while models are published alongside."""
    other: FlaskClient = make_app(auto_reindex=False).test_client()
    alice = follow(client, tokens, "alice", "syria")
    stop = threading.Event()
    fits: list[int] = []

    def refit() -> None:
        while not stop.is_set():
            fits.append(reindex(services.redis, live_window_days=WINDOW_DAYS).meta.version)

    fitter = threading.Thread(target=refit)
    fitter.start()
    try:
        written: list[str] = []
        for n in range(12):
            post(client, tokens, news(f"race-{n}", "syria"))
            written.append(f"race-{n}")
            for app_client in (other, client, other):
                items = ids(first_page(app_client, "alice", alice, limit=50)[1])
                assert set(written) <= set(items), (n, sorted(set(written) - set(items)))
    finally:
        stop.set()
        fitter.join()
    assert len(fits) >= 2, "models were published during the writes"
