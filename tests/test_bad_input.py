"""Whatever a client sends, the answer is a precise 4xx in the one error shape, and no write
is half done."""

from __future__ import annotations

import json

import pytest

from feed.model import versions
from tests.factories import article, ingest

ERROR_KEYS = {"status", "code", "message"}


def assert_error(response, status, code=None, mentions=()):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    error = response.json["error"]
    assert ERROR_KEYS <= set(error) <= ERROR_KEYS | {"details"}
    assert error["status"] == status
    if code:
        assert error["code"] == code
    for text in mentions:
        assert text in error["message"]


@pytest.fixture
def seeded(client, tokens):
    ingest(client, tokens.admin(), [article(id="seed", categories=["tech"])])
    return tokens


USER_CASES = [
    # (method, path, body or raw, expected status, code, words in the message)
    ("put", "/v1/users/alice/categories", "{not json", 400, "bad_request", ["Invalid JSON"]),
    (
        "put",
        "/v1/users/alice/categories",
        {"categories": "tech"},
        422,
        "validation_error",
        ["categories"],
    ),
    (
        "put",
        "/v1/users/alice/categories",
        {"categories": [1, 2]},
        422,
        "validation_error",
        ["categories.0"],
    ),
    (
        "put",
        "/v1/users/alice/categories",
        {"categories": ["tech"], "extra": 1},
        422,
        "validation_error",
        ["extra: Unknown field"],
    ),
    (
        "put",
        "/v1/users/alice/categories",
        {},
        422,
        "validation_error",
        ["Missing data for required field"],
    ),
    (
        "put",
        "/v1/users/alice/categories",
        {"categories": ["Not A Slug"]},
        422,
        "validation_error",
        ["categories.0"],
    ),
    (
        "put",
        "/v1/users/alice/categories",
        {"categories": [f"c{i}" for i in range(201)]},
        422,
        "validation_error",
        ["categories"],
    ),
    (
        "put",
        "/v1/users/alice/categories",
        {"categories": ["tech", "atlantis"]},
        404,
        "category_not_found",
        ["atlantis"],
    ),
    ("put", "/v1/users/alice/categories/atlantis", None, 404, "category_not_found", ["atlantis"]),
    ("put", "/v1/users/alice/categories/BAD_SLUG", None, 400, "invalid_id", ["slug"]),
    ("get", "/v1/users/alice/feed?limit=0", None, 422, "validation_error", ["limit"]),
    ("get", "/v1/users/alice/feed?limit=101", None, 422, "validation_error", ["limit"]),
    ("get", "/v1/users/alice/feed?limit=ten", None, 422, "validation_error", ["limit"]),
    ("get", "/v1/users/alice/feed?limit=-5", None, 422, "validation_error", ["limit"]),
    ("get", "/v1/users/alice/feed?cursor=forged", None, 400, "invalid_cursor", ["cursor"]),
    # `?cursor=` (empty) is the first page: tests/test_hostile_input.py.
    ("post", "/v1/users/alice/feed", None, 405, "method_not_allowed", []),
    ("get", "/v1/users/alice/nothing-here", None, 404, "not_found", []),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "code", "mentions"), USER_CASES)
def test_user_routes_reject_bad_input(client, seeded, method, path, body, status, code, mentions):
    headers = seeded.user("alice")
    if isinstance(body, str):
        response = getattr(client, method)(
            path, data=body, headers=headers, content_type="application/json"
        )
    else:
        response = getattr(client, method)(path, json=body, headers=headers)
    assert_error(response, status, code, mentions)
    assert client.get("/v1/users/alice/categories", headers=headers).json == {"categories": []}


@pytest.mark.parametrize(
    "user_id", ["a b", "x{y}", "%7Bu%3Aother%7D", "a" * 129, "-lead", "alice%0A"]
)
def test_bad_user_ids_are_400(client, tokens, user_id):
    response = client.get(f"/v1/users/{user_id}/categories", headers=tokens.user("alice"))
    assert_error(response, 400, "invalid_id", ["user id"])


def bad_article(**changes):
    good = article()
    good.update(changes)
    return {k: v for k, v in good.items() if v is not ...}


ARTICLE_CASES = {
    "missing url": (bad_article(url=...), "url"),
    "relative url": (bad_article(url="/news/1"), "url"),
    "ftp url": (bad_article(url="ftp://example.com/x"), "url"),
    "id with a brace": (bad_article(id="a{b}"), "id"),
    "id with a trailing newline": (bad_article(id="a\n"), "id"),
    "slug with a trailing newline": (bad_article(categories=["tech\n"]), "categories"),
    "id too long": (bad_article(id="a" * 129), "id"),
    "numeric id": (bad_article(id=12), "id"),
    "empty title": (bad_article(title=""), "title"),
    "title as list": (bad_article(title=["x"]), "title"),
    "no categories": (bad_article(categories=[]), "categories"),
    "bad slug": (bad_article(categories=["Middle East"]), "categories"),
    "too many categories": (bad_article(categories=[f"c{i}" for i in range(11)]), "categories"),
    "date not a date": (bad_article(published_at="last tuesday"), "published_at"),
    "date impossible": (bad_article(published_at="2026-02-30T10:00:00Z"), "published_at"),
    "date in the future": (bad_article(published_at="2099-01-01T00:00:00Z"), "published_at"),
    "unknown field": (bad_article(author="me"), "author"),
    "huge body": (bad_article(body="x" * 100_001), "body"),
    "not an object": ("just a string", "_schema"),
}


@pytest.mark.parametrize(("bad", "field"), ARTICLE_CASES.values(), ids=ARTICLE_CASES.keys())
def test_a_bad_article_is_rejected_alone_with_its_reason(client, seeded, bad, field):
    good = article(id="ok-neighbour")
    response = client.post("/v1/articles", json={"articles": [good, bad]}, headers=seeded.admin())
    assert response.status_code == 200
    assert response.json["created"] == ["ok-neighbour"]
    (rejection,) = response.json["rejected"]
    assert rejection["index"] == 1 and rejection["reason"] == "invalid"
    assert field in rejection["message"]


BATCH_CASES = [
    ('{"articles": [', 400, "bad_request"),
    (json.dumps({"articles": "nope"}), 422, "validation_error"),
    (json.dumps({"articles": []}), 422, "validation_error"),
    (json.dumps({"articles": [article()], "dry_run": True}), 422, "validation_error"),
    (json.dumps([article()]), 422, "validation_error"),
]


@pytest.mark.parametrize(("raw", "status", "code"), BATCH_CASES)
def test_a_bad_batch_is_refused_whole_and_writes_nothing(
    client, seeded, services, raw, status, code
):
    version = services.redis.get(versions.CORPUS_VERSION_KEY)
    response = client.post(
        "/v1/articles", data=raw, content_type="application/json", headers=seeded.admin()
    )
    assert_error(response, status, code)
    assert services.redis.get(versions.CORPUS_VERSION_KEY) == version


def test_more_than_1000_articles_is_refused_whole(client, seeded, services):
    batch = [article() for _ in range(1001)]
    response = client.post("/v1/articles", json={"articles": batch}, headers=seeded.admin())
    assert_error(response, 422, "validation_error", ["articles"])
    assert client.get(f"/v1/articles/{batch[0]['id']}").status_code == 404


def test_an_oversize_body_is_413(client, seeded):
    huge = "x" * (11 * 1024 * 1024)
    response = client.post(
        "/v1/articles", data=huge, content_type="application/json", headers=seeded.admin()
    )
    assert_error(response, 413, "payload_too_large")


def test_a_form_body_is_not_mistaken_for_json(client, seeded):
    response = client.put(
        "/v1/users/alice/categories", data={"categories": "tech"}, headers=seeded.user("alice")
    )
    assert response.status_code in (415, 422)
    assert response.json["error"]["status"] == response.status_code


@pytest.mark.parametrize("article_id", ["a b", "x{y}", "a" * 129])
def test_bad_article_ids_in_the_path_are_400(client, seeded, article_id):
    assert_error(client.get(f"/v1/articles/{article_id}"), 400, "invalid_id")
    assert_error(
        client.delete(f"/v1/articles/{article_id}", headers=seeded.admin()), 400, "invalid_id"
    )


def test_unknown_article_is_404(client):
    assert_error(client.get("/v1/articles/nope"), 404, "article_not_found", ["nope"])


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"name": "a\tb"}, {"name": "x" * 101}, {"name": "ok", "icon": "x"}]
)
def test_bad_category_bodies_are_422(client, tokens, body):
    response = client.put("/v1/categories/gaza", json=body, headers=tokens.admin())
    assert_error(response, 422, "validation_error")
    assert client.get("/v1/categories").json == {"categories": []}


def test_bad_category_slug_in_the_path_is_400(client, tokens):
    response = client.put("/v1/categories/Bad Slug", json={"name": "x"}, headers=tokens.admin())
    assert_error(response, 400, "invalid_id", ["slug"])


def test_unknown_query_parameters_are_ignored(client, seeded):
    # Browsers and proxies add cache busters; only request bodies are strict about fields.
    response = client.get("/v1/users/alice/feed?limit=5&_=1700000000", headers=seeded.user("alice"))
    assert response.status_code == 200
