"""The corpus API: upsert by id, dedupe by canonical URL, per-article outcomes, read, delete."""

from __future__ import annotations

from tests.factories import article, ingest


def post(client, tokens, articles):
    return client.post("/v1/articles", json={"articles": articles}, headers=tokens.admin())


def test_upsert_creates_then_updates_by_id(client, tokens):
    first = article(id="story-1", title="Original headline")
    assert post(client, tokens, [first]).json == {
        "created": ["story-1"],
        "updated": [],
        "rejected": [],
    }
    changed = {**first, "title": "Corrected headline"}
    assert post(client, tokens, [changed]).json["updated"] == ["story-1"]
    assert client.get("/v1/articles/story-1").json["title"] == "Corrected headline"


def test_same_canonical_url_under_a_new_id_is_reported_not_stored(client, tokens):
    post(client, tokens, [article(id="orig", url="https://news.example.com/a/b")])
    copy = article(id="copy", url="HTTPS://News.Example.com/a/b/?utm_source=x#top")
    result = post(client, tokens, [copy]).json
    assert result["created"] == []
    assert result["rejected"] == [
        {
            "index": 0,
            "id": "copy",
            "reason": "duplicate_url",
            "duplicate_of": "orig",
            "message": "this url is already stored as article 'orig'",
        }
    ]
    assert client.get("/v1/articles/copy").status_code == 404


def test_bad_articles_are_rejected_one_by_one_and_the_rest_stored(client, tokens):
    good = article(id="good")
    bad_date = article(id="bad-date", published_at="yesterday")
    bad_id = article(id="bad id!")
    twin = article(id="good")
    result = post(client, tokens, [bad_date, good, bad_id, twin]).json
    assert result["created"] == ["good"]
    rejected = {r["index"]: r for r in result["rejected"]}
    assert set(rejected) == {0, 2, 3}
    assert "published_at" in rejected[0]["message"]
    assert rejected[2]["id"] == "bad id!" and "id:" in rejected[2]["message"]
    assert rejected[3]["reason"] == "duplicate_id"


def test_categories_named_by_articles_are_created_with_counts(client, tokens):
    ingest(
        client,
        tokens.admin(),
        [article(categories=["middle-east", "syria"]), article(categories=["syria"])],
    )
    catalog = {c["slug"]: c for c in client.get("/v1/categories").json["categories"]}
    assert catalog["syria"] == {"slug": "syria", "name": "Syria", "article_count": 2}
    assert catalog["middle-east"]["name"] == "Middle East"
    assert catalog["middle-east"]["article_count"] == 1


def test_moving_an_article_between_categories_moves_its_count(client, tokens):
    story = article(id="mover", categories=["tech"])
    post(client, tokens, [story])
    post(client, tokens, [{**story, "categories": ["business"]}])
    counts = {
        c["slug"]: c["article_count"] for c in client.get("/v1/categories").json["categories"]
    }
    assert counts == {"tech": 0, "business": 1}


def test_read_returns_every_field(client, tokens):
    story = article(id="full", body="Long body text.", source="Wire")
    post(client, tokens, [story])
    body = client.get("/v1/articles/full").json
    assert body["body"] == "Long body text."
    assert body["published_at"] == story["published_at"]
    assert body["categories"] == story["categories"]


def test_delete_removes_the_article_and_frees_its_url(client, tokens):
    story = article(id="doomed", url="https://news.example.com/doomed")
    post(client, tokens, [story])
    assert client.delete("/v1/articles/doomed", headers=tokens.admin()).status_code == 204
    assert client.get("/v1/articles/doomed").status_code == 404
    assert client.delete("/v1/articles/doomed", headers=tokens.admin()).status_code == 404
    assert post(client, tokens, [{**story, "id": "reborn"}]).json["created"] == ["reborn"]


def test_category_put_creates_then_renames(client, tokens):
    admin = tokens.admin()
    created = client.put("/v1/categories/gaza", json={"name": "Gaza"}, headers=admin)
    assert created.status_code == 201
    assert created.json == {"slug": "gaza", "name": "Gaza", "article_count": 0}
    renamed = client.put("/v1/categories/gaza", json={"name": "Gaza Strip"}, headers=admin)
    assert renamed.status_code == 200 and renamed.json["name"] == "Gaza Strip"
