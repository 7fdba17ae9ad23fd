"""The feed's hot path (api/hot_path.py) answers exactly as the Flask app does.

Two apps on one Redis: one as shipped, one without its hot path, so every request goes
through Flask's routing, hooks, webargs, flask-smorest and the view. Each case is prepared
once, then asked of both: status, headers and body must match (the body's feed_id and a
generated request id are fresh per response by design), and so must what each app counted
in its metrics.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import TestResponse

from api.extensions import EXTENSION
from api.feed_query import plain_query
from api.hot_path import FeedHotPath
from devtools.redis_server import RedisServer
from feed.readers.tokens import issue_token
from feed.serving import cache
from tests.conftest import Tokens
from tests.factories import demo_corpus
from tests.live import free_port

FEED_ID = re.compile(rb'"feed_id":"[0-9a-f]{32}"')
GENERATED_ID = re.compile(r"[0-9a-f]{32}")
REQUEST_ID = "hot-path-test"
# Low enough to reach in a few requests; each case has its own users, well under it.
PER_USER_LIMIT = 12
# Derived from the clock when each response is made: the two answers may be a second apart.
CLOCK_HEADERS = ("Retry-After",)
EXPERIMENT = {
    "name": "hot",
    "variants": [
        {"name": "control", "ranker": "tfidf", "params": {}, "weight": 1},
        {"name": "fresh", "ranker": "latest", "params": {}, "weight": 1},
    ],
    "traffic": 1.0,
}


@dataclass
class Side:
    """One app (its client), asking as one reader."""

    app: Flask
    client: FlaskClient
    tokens: Tokens
    user: str = "reader"

    def auth(self, user: str | None = None) -> dict[str, str]:
        return {**self.tokens.user(user or self.user), "X-Request-ID": REQUEST_ID}

    def feed(self, query: str = "limit=5", **headers: str) -> TestResponse:
        url = f"/v1/users/{self.user}/feed" + (f"?{query}" if query else "")
        return self.client.get(url, headers={**self.auth(), **headers})

    def follow(self, *slugs: str) -> None:
        url = f"/v1/users/{self.user}/categories"
        body = {"categories": list(slugs)}
        assert self.client.put(url, json=body, headers=self.auth()).status_code == 200


@dataclass(frozen=True)
class Case:
    """``prepare`` runs once (on a third app: the two compared count only what is asked);
    ``ask`` then runs on each side, on the state ``prepare`` left (one Redis)."""

    name: str
    ask: Callable[[Side, Any], TestResponse]
    prepare: Callable[[Side], Any] = lambda side: side.follow("syria", "tech")


def _warm(side: Side) -> TestResponse:
    side.follow("syria", "tech")
    first = side.feed()
    assert first.headers["X-Feed-Cache"] == "miss"
    return first


def _flood(side: Side) -> None:
    side.follow("tech")
    for _ in range(PER_USER_LIMIT * 3):
        if side.feed().status_code == 429:
            return
    raise AssertionError("the per-user limit was never reached")


def _stale(side: Side) -> str:
    cursor: str = _warm(side).json["next_cursor"]
    r = side.app.extensions[EXTENSION].redis
    r.delete(cache.FEED_KEY % side.user, cache.PAGE_KEY % side.user)
    return cursor


def _expired(side: Side) -> str:
    token = issue_token(side.app.extensions[EXTENSION].settings, side.user, ttl=-60)
    return f"Bearer {token}"


def _query(text: str) -> Case:
    return Case(f"query {text!r}", lambda side, _: side.feed(text), prepare=_warm)


CASES = [
    Case("hit", lambda side, _: side.feed(), prepare=_warm),
    Case(
        "304",
        lambda side, first: side.feed(**{"If-None-Match": first.headers["ETag"]}),
        prepare=_warm,
    ),
    Case("other etag", lambda side, _: side.feed(**{"If-None-Match": '"old"'}), prepare=_warm),
    Case(
        "next page",
        lambda side, first: side.feed(f"limit=5&cursor={first.json['next_cursor']}"),
        prepare=_warm,
    ),
    Case("default limit", lambda side, _: side.feed(""), prepare=_warm),
    Case("empty cursor", lambda side, _: side.feed("limit=5&cursor="), prepare=_warm),
    Case(
        "no token",
        lambda side, _: side.client.get(
            f"/v1/users/{side.user}/feed?limit=5", headers={"X-Request-ID": REQUEST_ID}
        ),
    ),
    Case("bad token", lambda side, _: side.feed(Authorization="Bearer not.a.token")),
    Case("expired token", lambda side, token: side.feed(Authorization=token), prepare=_expired),
    Case(
        "another reader's feed",
        lambda side, _: side.client.get(
            f"/v1/users/{side.user}/feed?limit=5", headers=side.auth(user="someone-else")
        ),
    ),
    Case("rate limited", lambda side, _: side.feed(), prepare=_flood),
    Case(
        "bad user id",
        lambda side, _: side.client.get(
            "/v1/users/" + "a" * 200 + "/feed?limit=5", headers=side.auth()
        ),
    ),
    Case(
        "stale cursor", lambda side, cursor: side.feed(f"limit=5&cursor={cursor}"), prepare=_stale
    ),
    Case("forged cursor", lambda side, _: side.feed("limit=5&cursor=bm90LWEtY3Vyc29y")),
    Case(
        "no request id",
        lambda side, _: side.client.get(
            f"/v1/users/{side.user}/feed?limit=5", headers=side.tokens.user(side.user)
        ),
        prepare=_warm,
    ),
    Case(
        "unusable request id",
        lambda side, _: side.feed(**{"X-Request-ID": "two words"}),
        prepare=_warm,
    ),
    Case(
        "HEAD",
        lambda side, _: side.client.head(
            f"/v1/users/{side.user}/feed?limit=5", headers=side.auth()
        ),
        prepare=_warm,
    ),
    Case(
        "escaped user id",
        lambda side, _: side.client.get(
            f"/v1/users/{side.user[:3]}%2F{side.user[3:]}/feed?limit=5", headers=side.auth()
        ),
    ),
    Case(
        "trailing slash",
        lambda side, _: side.client.get(
            f"/v1/users/{side.user}/feed/?limit=5", headers=side.auth()
        ),
    ),
    # Not plain: the hot path leaves these to Flask and webargs, which accept or refuse them.
    _query("limit=0"),
    _query("limit=101"),
    _query("limit=abc"),
    _query("limit=05"),
    _query("limit=5&limit=6"),
    _query("limit=5&unknown=1"),
    _query("limit=5&cursor=a%20b"),
    _query("limit=5&cursor=" + "x" * 401),
    _query("limit=5&explain=true"),
    _query("limit=5&ranker=latest"),
]


@pytest.fixture
def apps(make_app: Callable[..., Flask]) -> dict[str, Flask]:
    """The app as shipped, one without its hot path, and one to prepare cases: one Redis."""
    limits = {"rate_limit_per_user": f"{PER_USER_LIMIT}/minute"}
    found = {name: make_app(**limits) for name in ("hot", "documented", "setup")}
    without_hot_path(found["documented"])
    setup = found["setup"]
    demo_corpus(setup.test_client(), Tokens(setup.extensions[EXTENSION]).admin(), 150)
    return found


def without_hot_path(app: Flask) -> None:
    hot = app.wsgi_app
    assert isinstance(hot, FeedHotPath)
    app.wsgi_app = hot.flask_app  # type: ignore[method-assign]


def side(app: Flask, user: str) -> Side:
    return Side(app, app.test_client(), Tokens(app.extensions[EXTENSION]), user)


def assert_same(hot: TestResponse, documented: TestResponse) -> None:
    assert hot.status == documented.status, (hot.json, documented.json)
    assert _headers(hot) == _headers(documented)
    for name in CLOCK_HEADERS:
        if name in documented.headers:
            assert abs(int(hot.headers[name]) - int(documented.headers[name])) <= 1
    assert _body(hot) == _body(documented)


def _headers(response: TestResponse) -> dict[str, str]:
    found = {
        name.lower(): value for name, value in response.headers.items() if name not in CLOCK_HEADERS
    }
    if GENERATED_ID.fullmatch(found.get("x-request-id", "")):
        found["x-request-id"] = "generated"
    return found


def _body(response: TestResponse) -> bytes:
    return FEED_ID.sub(b'"feed_id":"-"', response.get_data())


def _counted(app: Flask) -> dict[str, float]:
    """The app's request counts by route, method and status, and its pages by cache result."""
    text = app.test_client().get("/metrics").get_data(as_text=True)
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("route") == "/metrics":
                continue
            if sample.name in (
                "newsfeed_http_request_duration_seconds_count",
                "newsfeed_feed_pages_total",
            ):
                found[f"{sample.name} {sorted(sample.labels.items())}"] = sample.value
    return found


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_the_hot_path_answers_as_flask_does(apps, case: Case) -> None:
    user = re.sub(r"[^a-z0-9]+", "-", case.name.lower()).strip("-")[:40] + f"-{len(case.name)}"
    prepared = case.prepare(side(apps["setup"], user))
    hot = case.ask(side(apps["hot"], user), prepared)
    documented = case.ask(side(apps["documented"], user), prepared)
    assert_same(hot, documented)
    assert _counted(apps["hot"]) == _counted(apps["documented"])


def test_a_miss_is_built_and_answered_alike(apps) -> None:
    """Each side's own build: the same articles in the same order (build ids, hence cursors
    and ETags, and scores to the microsecond of freshness differ between any two builds)."""
    answers = []
    for name in ("hot", "documented"):
        asking = side(apps[name], "misses")
        asking.follow("syria")
        asking.follow("syria", "tech")  # a follow change: the next page is built afresh
        answers.append(asking.feed())
    hot, documented = answers
    assert hot.status_code == documented.status_code == 200
    assert hot.headers["X-Feed-Cache"] == documented.headers["X-Feed-Cache"] == "miss"
    assert sorted(hot.headers.keys()) == sorted(documented.headers.keys())
    assert [i["id"] for i in hot.json["items"]] == [i["id"] for i in documented.json["items"]]
    assert _counted(apps["hot"]) == _counted(apps["documented"])


def test_with_an_experiment_running_both_serve_and_count_the_variant(apps) -> None:
    setup = side(apps["setup"], "exposed")
    admin = Tokens(apps["setup"].extensions[EXTENSION]).admin()
    assert setup.client.post("/v1/experiments", json=EXPERIMENT, headers=admin).status_code == 201
    assert setup.client.post("/v1/experiments/hot/start", headers=admin).status_code == 200
    _warm(setup)
    pages = []
    for name in ("hot", "documented"):
        answer = side(apps[name], "exposed").feed()
        results = side(apps[name], "exposed").client.get(
            "/v1/experiments/hot/results", headers=admin
        )
        pages.append((answer, sum(v["pages"] for v in results.json["variants"])))
    (hot, lean_pages), (documented, documented_pages) = pages
    assert hot.json["experiment"] == "hot"
    assert_same(hot, documented)
    assert (lean_pages, documented_pages) == (2, 3)  # setup's miss, then one page each


def test_redis_down_is_the_same_503(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", port=free_port())
    server.start()
    try:
        url = server.url
        hot, documented = make_app(redis_url=url), make_app(redis_url=url)
        without_hot_path(documented)
        server.stop()
        answers = [side(app, "reader").feed() for app in (hot, documented)]
    finally:
        server.stop()
    assert answers[0].status_code == 503
    assert_same(*answers)


@pytest.mark.parametrize(
    ("query", "plain"),
    [
        ("", (20, None)),
        ("limit=5", (5, None)),
        ("limit=100&cursor=abc_-.~9", (100, "abc_-.~9")),
        ("cursor=&limit=1", (1, None)),
        ("limit=0", None),
        ("limit=101", None),
        ("limit=05", None),
        ("limit=%35", None),
        ("limit=5&limit=5", None),
        ("limit=5&", None),
        ("limit", None),
        ("cursor=a+b", None),
        ("cursor=" + "x" * 401, None),
        ("explain=false", None),
    ],
)
def test_plain_queries_are_read_and_anything_else_is_left_to_the_schema(query, plain) -> None:
    assert plain_query(query) == plain


def test_a_refused_request_is_counted_once(apps) -> None:
    """Every refusal goes through the rate limit once, in either path: the 429 comes after
    exactly PER_USER_LIMIT requests."""
    statuses = {}
    for name in ("hot", "documented"):
        asking = side(apps[name], f"counted-once-{name}")
        url = f"/v1/users/{asking.user}/feed?limit=5"
        headers = asking.auth(user=f"refused-{name}")  # another reader's feed: 403 each
        statuses[name] = [
            asking.client.get(url, headers=headers).status_code for _ in range(PER_USER_LIMIT + 1)
        ]
    assert statuses["hot"] == statuses["documented"] == [403] * PER_USER_LIMIT + [429]


def test_behind_a_trusted_proxy_the_forwarded_client_is_limited(make_app, tokens) -> None:
    app = make_app(rate_limit_per_ip="3/minute", trusted_proxies=1)
    client = app.test_client()

    def via_balancer(user: str, client_ip: str) -> int:
        headers = {**tokens.user(user), "X-Forwarded-For": client_ip}
        url = f"/v1/users/{user}/feed?limit=5"
        return client.get(url, headers=headers, environ_base={"REMOTE_ADDR": "10.9.9.9"}).status

    demo_corpus(client, tokens.admin(), 30)  # the admin's request counts against 127.0.0.1
    answers = [via_balancer(f"u{n}", "203.0.113.7") for n in range(4)]
    assert [int(a.split()[0]) for a in answers] == [200, 200, 200, 429]
    assert via_balancer("u9", "198.51.100.4").startswith("200")


@pytest.mark.parametrize(
    "origin", [None, "https://news.example", "https://NEWS.example", "https://elsewhere.example"]
)
@pytest.mark.parametrize("origins", [("https://news.example",), ("https://news.example", "*")])
def test_with_cors_on_both_answer_alike(make_app, origin: str | None, origins) -> None:
    """flask-cors adds its headers to every /v1 answer, Origin or not; the hot path adds the
    same, from flask-cors's own functions."""
    setup, hot, documented = (make_app(cors_origins=origins) for _ in range(3))
    without_hot_path(documented)
    demo_corpus(setup.test_client(), Tokens(setup.extensions[EXTENSION]).admin(), 60)
    _warm(side(setup, "browser"))
    extra = {} if origin is None else {"Origin": origin}
    answers = [side(app, "browser").feed(**extra) for app in (hot, documented)]
    assert answers[0].status_code == 200
    assert "Access-Control-Allow-Origin" in answers[1].headers or origin is not None
    assert_same(*answers)
    assert answers[0].headers.getlist("Access-Control-Allow-Origin") == answers[1].headers.getlist(
        "Access-Control-Allow-Origin"
    )
