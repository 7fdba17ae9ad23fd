"""Hostile input a client or an admin can send answers 4xx in the one error shape, never 5xx."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from tests.factories import article, ingest

GUNICORN_TIMEOUT = 30  # config/gunicorn.py: a worker busy this long is killed mid-request


def error_body(response) -> dict:
    body = response.get_json()
    assert set(body) == {"error"} and body["error"]["status"] == response.status_code, body
    return body["error"]


@pytest.mark.parametrize("depth", [100, 2_000, 50_000])
def test_deeply_nested_json_is_refused_not_a_500(client, tokens, depth):
    raw = "[" * depth + "]" * depth
    response = client.post(
        "/v1/events",
        data=json.dumps({"events": "PLACEHOLDER"}).replace('"PLACEHOLDER"', raw),
        content_type="application/json",
        headers=tokens.user("alice"),
    )
    assert response.status_code in (202, 400), response.get_data()[:200]
    if response.status_code == 202:  # each nested "event" rejected on its own
        assert response.get_json()["accepted"] == 0
    else:
        error_body(response)


@pytest.mark.parametrize(
    "published_at",
    [
        "0001-01-01T00:00:00+05:00",
        "0001-01-01T00:30:00+01:00",
        "9999-12-31T23:59:59-05:00",
        "9999-12-31T23:00:00-14:00",
        "0001-01-01T00:00:00Z",
        "1000-06-01T00:00:00Z",
    ],
)
def test_dates_near_the_limits_are_refused_or_stored_readably(client, tokens, published_at):
    admin = tokens.admin()
    response = client.post(
        "/v1/articles",
        json={"articles": [article(id="edge", published_at=published_at)]},
        headers=admin,
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    if body["created"]:  # accepted: it must read back, for good
        read = client.get("/v1/articles/edge")
        assert read.status_code == 200, read.get_json()
    else:
        [rejected] = body["rejected"]
        assert rejected["reason"] == "invalid" and "published_at" in rejected["message"]


def test_a_lone_surrogate_in_a_category_name_is_a_400_and_writes_nothing(client, tokens):
    """Valid JSON, but no UTF-8 can store it: refused at the door (it used to be a 500)."""
    response = client.put(
        "/v1/categories/tech",
        data='{"name": "Tech \\ud800"}',
        content_type="application/json",
        headers=tokens.admin(),
    )
    assert response.status_code == 400, response.get_json()
    assert "lone UTF-16 surrogate" in error_body(response)["message"]
    slugs = [c["slug"] for c in client.get("/v1/categories").get_json()["categories"]]
    assert "tech" not in slugs


def test_a_lone_surrogate_anywhere_in_an_article_batch_refuses_the_batch(client, tokens):
    raw = json.dumps({"articles": [article(id="ok"), article(id="bad", title="x")]})
    raw = raw.replace('"title": "x"', '"title": "bad \\udfff title"')
    response = client.post(
        "/v1/articles", data=raw, content_type="application/json", headers=tokens.admin()
    )
    assert response.status_code == 400, response.get_json()
    assert "lone UTF-16 surrogate" in error_body(response)["message"]
    assert client.get("/v1/articles/ok").status_code == 404  # nothing half-written
    ingest(client, tokens.admin(), [article(id="after")])  # the store still works


def test_an_empty_cursor_is_the_first_page(client, tokens):
    alice = tokens.user("alice")
    client.put("/v1/users/alice/categories/tech", headers=alice)
    ingest(client, tokens.admin(), [article(id=f"t{i}", categories=["tech"]) for i in range(3)])
    first = client.get("/v1/users/alice/feed?limit=2", headers=alice)
    empty = client.get("/v1/users/alice/feed?limit=2&cursor=", headers=alice)
    assert empty.status_code == 200, empty.get_json()
    assert [i["id"] for i in empty.get_json()["items"]] == [
        i["id"] for i in first.get_json()["items"]
    ]


def test_an_invalid_event_naming_another_user_still_refuses_the_batch(client, tokens):
    """The promise is "any event for another user refuses the whole batch (403)", also when
    that event is invalid for another reason (an unknown type)."""
    ingest(client, tokens.admin(), [article(id="a1")])
    events = [
        {"type": "click", "user_id": "alice", "article_id": "a1"},
        {"type": "teleport", "user_id": "bob", "article_id": "a1"},
    ]
    response = client.post("/v1/events", json={"events": events}, headers=tokens.user("alice"))
    assert response.status_code == 403, response.get_json()
    assert "'bob'" in error_body(response)["message"]


# Found by tests/test_hostile_json.py.


def _raw(client, method, path, raw, headers):
    return client.open(
        path, method=method, data=raw, content_type="application/json", headers=headers
    )


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ('{"events": [{"position": %s}]}' % ("9" * 4301), "more than 4300 digits"),  # was a 500
        ('{"events": [{"position": NaN}]}', "NaN is not a JSON number"),
        ('{"events": [{"dwell_ms": -Infinity}]}', "-Infinity is not a JSON number"),
        ('{"events": [], "events": [{}]}', "the key 'events' appears twice"),
        ('{"events": [{"user_id": "alice", "user_id": "bob"}]}', "the key 'user_id' appears twice"),
    ],
)
def test_json_that_python_reads_but_json_does_not_mean_is_a_400(client, tokens, raw, says):
    response = _raw(client, "POST", "/v1/events", raw, tokens.user("alice"))
    assert response.status_code == 400, response.get_json()
    assert says in error_body(response)["message"]


def test_a_category_named_twice_in_one_body_is_refused_and_writes_nothing(client, tokens):
    raw = '{"name": "Tech", "name": "Other"}'
    response = _raw(client, "PUT", "/v1/categories/tech", raw, tokens.admin())
    assert response.status_code == 400, response.get_json()
    assert client.get("/v1/categories").get_json() == {"categories": []}


@pytest.mark.parametrize("url", ["http://e.com:99999/a", "http://[::1]:70000/", "https://e.com:0/"])
def test_an_article_url_with_an_impossible_port_is_rejected_alone(client, tokens, url):
    """It used to be a 500 for the whole batch (the port is only read when deduplicating)."""
    batch = {"articles": [article(id="good"), article(id="bad-port", url=url)]}
    response = client.post("/v1/articles", json=batch, headers=tokens.admin())
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["created"] == ["good"]
    [rejected] = body["rejected"]
    assert rejected["id"] == "bad-port" and "port" in rejected["message"]


def test_a_feed_item_with_an_impossible_port_is_rejected_alone(services):
    """Writers other than the API (feed polls, `newsfeed ingest`) go through the same check."""
    from api.schemas import ArticleInSchema

    good, bad = (
        ArticleInSchema().load(article(id=i, url=f"https://e.com/{i}")) for i in ("ok", "bad")
    )
    bad = dataclasses.replace(bad, url="https://e.com:123456/bad")
    result = services.corpus.upsert([(0, good), (1, bad)])
    assert result.created == ["ok"]
    assert [(r.id, r.reason) for r in result.rejected] == [("bad", "invalid")]


def test_a_source_url_with_an_impossible_port_is_a_422(client, tokens):
    source = {"url": "http://feeds.example.com:99999/rss", "categories": ["tech"]}
    response = client.post("/v1/sources", json=source, headers=tokens.admin())
    assert response.status_code == 422, response.get_json()
    assert "port" in error_body(response)["message"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/sources", {"poll_interval_seconds": 900.5}, "poll_interval_seconds"),
        ("/v1/sources", {"poll_interval_seconds": "900"}, "poll_interval_seconds"),
        ("/v1/sources", {"enabled": "yes"}, "enabled"),
        ("/v1/sources", {"enabled": 1}, "enabled"),
    ],
)
def test_a_number_or_flag_of_the_wrong_type_is_refused_not_coerced(
    client, tokens, path, body, field
):
    """900.5 used to be stored as 900, "yes" as true."""
    source = {"url": "https://feeds.example.com/rss", "categories": ["tech"], **body}
    response = client.post(path, json=source, headers=tokens.admin())
    assert response.status_code == 422, response.get_json()
    assert field in error_body(response)["message"]


def test_an_event_position_that_is_not_a_whole_number_is_rejected(client, tokens):
    ingest(client, tokens.admin(), [article(id="a1")])
    events = [
        {"type": "click", "user_id": "alice", "article_id": "a1", "position": 2.5},
        {"type": "click", "user_id": "alice", "article_id": "a1", "position": 2.0},
    ]
    response = client.post("/v1/events", json={"events": events}, headers=tokens.user("alice"))
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["accepted"] == 1
    assert [r["index"] for r in body["rejected"]] == [0]


def test_a_body_of_millions_of_items_is_refused_by_its_length_at_once(client, tokens):
    """Each item used to be validated before the batch's length was checked: a 6 MB body took
    minutes of CPU from any reader (past gunicorn's worker timeout, which kills the worker)."""
    items = ",".join(["{}"] * 3_000_000)
    raw = f'{{"events": [{items}]}}'
    started = time.monotonic()
    response = _raw(client, "POST", "/v1/events", raw, tokens.user("alice"))
    assert time.monotonic() - started < GUNICORN_TIMEOUT
    assert response.status_code == 422, response.get_json()
    assert error_body(response)["details"] == {
        "fields": {"json": {"events": ["Length must be between 1 and 500."]}}
    }


def test_a_list_too_long_is_refused_without_an_error_per_item(client, tokens):
    """The answer to a million wrong items used to list a million errors."""
    items = ",".join(["{}"] * 100_000)
    raw = f'{{"categories": [{items}]}}'
    response = _raw(client, "PUT", "/v1/users/alice/categories", raw, tokens.user("alice"))
    assert response.status_code == 422
    assert error_body(response)["details"] == {
        "fields": {"json": {"categories": ["Longer than maximum length 200."]}}
    }


def test_more_ranker_parameters_than_any_ranker_takes_are_refused(client, tokens):
    params = {f"p{i}": 1 for i in range(1000)}
    variants = [
        {"name": "a", "ranker": "tfidf", "weight": 1, "params": params},
        {"name": "b", "ranker": "tfidf", "weight": 1},
    ]
    body = {"name": "many", "variants": variants, "traffic": 1}
    response = client.post("/v1/experiments", json=body, headers=tokens.admin())
    assert response.status_code == 422
    assert "params" in error_body(response)["message"]


@pytest.mark.parametrize("path", ["/v1/experiments/a%2F/start", "/v1//categories"])
def test_a_double_slash_in_a_path_is_a_json_404_not_an_html_redirect(client, tokens, path):
    response = client.open(path, method="POST" if "start" in path else "GET",
                           headers=tokens.admin())  # fmt: skip
    assert response.status_code == 404
    error_body(response)
