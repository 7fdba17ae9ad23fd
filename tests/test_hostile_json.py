"""Hostile JSON against every write route: never a 5xx, every refusal in the one error shape
with a message, and a refused request writes nothing.

Bodies are built as raw text, so they can hold what no JSON encoder writes: NaN and Infinity
literals, 1e400, integers of thousands of digits, lone UTF-16 surrogates as \\ud800 escapes,
a key twice in one object, deep nesting. Each example takes a valid body for its route and
breaks it in a few places (a wrong type at any level, null, a missing or unknown field, an
extreme date in any date field, odd unicode in ids and slugs, huge strings and arrays within
the body size limit), sometimes in the path and the encoding too.

`NEWSFEED_FUZZ_EXAMPLES` scales the examples per route (default 25; `make fuzz` runs 500).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from api.extensions import EXTENSION
from feed.model import versions
from feed.readers.events import STREAM_KEY
from tests.conftest import Tokens
from tests.factories import article

EXAMPLES = int(os.environ.get("NEWSFEED_FUZZ_EXAMPLES", "25"))
READER = "hostile-reader"
BODY_LIMIT = 10 * 1024 * 1024  # config.Settings.max_request_bytes
_serial = itertools.count(1)


# --- raw JSON --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """JSON text spliced in as written: NaN, 1e400, "\\ud800", a 5,000-digit integer."""

    text: str


@dataclass(frozen=True)
class Obj:
    """An object as written, so a key may appear twice."""

    pairs: tuple[tuple[Any, Any], ...]


@dataclass(frozen=True)
class Nested:
    """``value`` inside ``depth`` arrays (or objects): deeper than any parser recursion."""

    value: Any
    depth: int
    objects: bool = False


def render(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Nested):
        if value.objects:
            return '{"a":' * value.depth + render(value.value) + "}" * value.depth
        return "[" * value.depth + render(value.value) + "]" * value.depth
    if isinstance(value, Obj):
        return "{" + ",".join(f"{render(k)}:{render(v)}" for k, v in value.pairs) + "}"
    if isinstance(value, dict):
        return render(Obj(tuple(value.items())))
    if isinstance(value, list):
        return "[" + ",".join(render(v) for v in value) + "]"
    return json.dumps(value)


# --- strategies ------------------------------------------------------------------------------

ODD_NUMBERS = [
    "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "-0", "-0.0", "0e0", "1E+2", "5e-324",
    "1.0", "1.5", "-1", "2147483648", "9007199254740993", "1" * 4300, "1" * 4301, "-" + "9" * 9000,
]  # fmt: skip
ODD_STRINGS = [
    '"\\ud800"', '"a\\udfffb"', '"\\udc00\\ud800"', '"\\ud83d\\ude00"', '"\\u0000"', '"\\u001f"',
    '"\\u2028"', '"\\ufeff"', '"\\/"', '""', '" "',
]  # fmt: skip
ODD_IDS = [
    "café", "ａｂｃ", "a\u200bb", "İstanbul", "straße", "١٢٣", "a:body", "{u:alice}", "..", "a/b",
    "%2F", "😀", "a\nb", "a b", "-x", "x" * 129, "x" * 5000, "\u202eevil", "NUL\x00", ".",
]  # fmt: skip

ODD_URLS = [
    "http://e.com:99999/x", "http://[::1]:99999/", "https://e.com:0/", "http://e.com:-1/",
    "http://e.com:abc/", "http://[::1/", "http://[v1.x]/", "javascript:alert(1)", "http://%zz/",
    "http://e.com\\@evil.com/", "http://user:pass@e.com/", "HTTP://E.COM", "//e.com/x",
    "http://127.0.0.1:6379/", "http://169.254.169.254/latest/meta-data/", "file:///etc/passwd",
    "http://e.com/" + "a" * 5000, "http://xn--/", "http://é.com/", "http://e.com/\u0000",
]  # fmt: skip
BIG_STRINGS = [1_000, 70_000, 300_000]  # within the body limit: a length check must refuse them

odd_numbers = st.sampled_from(ODD_NUMBERS).map(Raw)
odd_ids = st.sampled_from(ODD_IDS)


def extreme_dates() -> st.SearchStrategy[str]:
    """ISO 8601-ish strings at and past the edges of the calendar and the clock."""
    year = st.one_of(
        st.sampled_from([1, 2, 999, 1000, 1899, 1900, 1969, 1970, 2038, 9998, 9999]),
        st.integers(1, 9999),
    )
    month_day = st.sampled_from(
        ["01-01", "12-31", "02-29", "02-30", "00-10", "13-01", "06-31", "06-30"]
    )
    clock = st.sampled_from(
        ["00:00:00", "23:59:59", "23:59:60", "24:00:00", "24:00", "12:00", "00:00:00.999999",
         "12:00:00.1234567891", "25:00:00", "12:60:00"]
    )  # fmt: skip
    offset = st.sampled_from(
        ["Z", "z", "", "+00:00", "-00:00", "+23:59", "-23:59", "+24:00", "+14:00", "-12:00",
         "+05:30", "+0530", "+05", "+23:59:59"]
    )  # fmt: skip
    separator = st.sampled_from(["T", " ", "t"])

    @st.composite
    def dated(draw: st.DrawFn) -> str:
        date = f"{draw(year):04d}-{draw(month_day)}"
        if draw(st.booleans()):
            return date
        return f"{date}{draw(separator)}{draw(clock)}{draw(offset)}"

    @st.composite
    def recent(draw: st.DrawFn) -> str:
        """Near now (inside the event window), with an offset that moves it by a day."""
        hours = draw(st.integers(-30, 24 * 8))
        moment = datetime.now(UTC) - timedelta(hours=hours)
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + draw(offset)

    odd = st.sampled_from(
        ["", "now", "2020-W01-1", "2020-001", "20200101T000000Z", "1700000000", "0000-01-01",
         "10000-01-01T00:00:00Z", "-0001-01-01T00:00:00Z", "2020-01-01T00:00:00+99:99"]
    )  # fmt: skip
    return st.one_of(dated(), recent(), odd)


json_leaves = st.one_of(
    odd_numbers,
    st.sampled_from(ODD_STRINGS).map(Raw),
    odd_ids,
    st.sampled_from(ODD_URLS),
    extreme_dates(),
    st.sampled_from([None, True, False, {}, [], Obj(())]),
    st.integers() | st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(BIG_STRINGS).map(lambda n: "x" * n),
)


def _objects(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keys = st.one_of(st.text(max_size=8), st.sampled_from(["id", "type", "url", "name"]))
    plain = st.dictionaries(keys, children, max_size=4)
    twice = st.tuples(keys, children, children).map(lambda t: Obj(((t[0], t[1]), (t[0], t[2]))))
    return st.one_of(plain, twice)


json_values = st.recursive(
    json_leaves, lambda children: st.lists(children, max_size=4) | _objects(children), max_leaves=12
)

Path = tuple[Any, ...]
# Values aimed at what a field holds, by its name (or its list's name).
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    **dict.fromkeys(["published_at", "ts"], extreme_dates()),
    **dict.fromkeys(["url"], st.sampled_from(ODD_URLS)),
    **dict.fromkeys(
        ["id", "user_id", "article_id", "feed_id", "name", "salt", "surface", "categories"],
        odd_ids,
    ),
    **dict.fromkeys(
        [
            "position",
            "dwell_ms",
            "weight",
            "traffic",
            "namespace",
            "params",
            "mmr_lambda",
            "poll_interval_seconds",
        ],
        odd_numbers | st.integers() | st.floats(),
    ),  # fmt: skip
}


def _paths(value: Any, here: Path = ()) -> list[Path]:
    found = [here]
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(_paths(child, (*here, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(_paths(child, (*here, index)))
    return found


def _replace(value: Any, path: Path, change: Callable[[Any], Any]) -> Any:
    if not path:
        return change(value)
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, change)}
    copied = list(value)
    copied[head] = _replace(copied[head], rest, change)
    return copied


@st.composite
def hostile_bodies(draw: st.DrawFn, valid: Any) -> Any:
    """``valid`` broken in one to three places."""
    body = valid
    for _ in range(draw(st.integers(1, 3))):
        if not isinstance(body, dict | list):
            break
        path = draw(st.sampled_from(_paths(body)))
        target: Any = body
        for step in path:
            target = target[step]
        ops = ["value", "null", "nest"]
        field = next((step for step in reversed(path) if isinstance(step, str)), None)
        if field in FIELD_VALUES:
            ops += ["aimed"] * 4
        if isinstance(target, dict):
            ops += ["unknown_key", "drop_key", "duplicate_key", "empty"]
        if isinstance(target, list):
            ops += ["many", "empty"]
        op = draw(st.sampled_from(ops))
        if op == "value":
            new: Any = draw(json_values)
        elif op == "null":
            new = None
        elif op == "nest":
            depth = draw(st.sampled_from([10, 900, 1100, 100_000]))
            new = Nested(target, depth, objects=draw(st.booleans()))
        elif op == "aimed":
            new = draw(FIELD_VALUES[field])
        elif op == "unknown_key":
            new = {**target, draw(st.text(max_size=10)): draw(json_leaves)}
        elif op == "drop_key" and target:
            dropped = draw(st.sampled_from(sorted(target)))
            new = {k: v for k, v in target.items() if k != dropped}
        elif op == "duplicate_key" and target:
            key = draw(st.sampled_from(sorted(target)))
            new = Obj((*target.items(), (key, draw(json_leaves))))
        elif op == "many" and target:
            new = [target[0]] * draw(st.sampled_from([2, 501, 1001, 20_000]))
        else:  # "empty", or nothing to drop, duplicate or repeat
            new = type(target)()
        body = _replace(body, path, lambda _old, new=new: new)
    return body


@dataclass(frozen=True)
class Sent:
    data: bytes
    content_type: str | None


@st.composite
def encoded(draw: st.DrawFn, body: Any) -> Sent:
    text = render(body)
    encoding = draw(st.sampled_from(["utf-8"] * 8 + ["utf-8-sig", "utf-16", "latin-1-bytes"]))
    if encoding == "latin-1-bytes":
        data = text.encode("utf-8", "surrogatepass") + b"\xff\xfe\xc3"
    else:
        data = text.encode(encoding, "surrogatepass")
    content_type = draw(
        st.sampled_from(
            ["application/json"] * 8
            + ["application/json; charset=latin-1", "application/problem+json", "text/plain", None]
        )
    )
    return Sent(data[:BODY_LIMIT], content_type)


def path_segment(valid: str) -> st.SearchStrategy[str]:
    """Mostly the valid id, sometimes odd unicode, percent-encoded as a client would send it."""
    odd = st.one_of(st.sampled_from(ODD_IDS), st.text(min_size=1, max_size=20))
    return st.one_of(st.just(valid), st.just(valid), odd.map(lambda s: quote(s, safe="")))


# --- routes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # {reader}, {slug}, {name}, {source}, {article} are filled per example
    admin: bool
    body: Callable[[], Any] | None  # a valid body; None: the route takes none (sent anyway)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _article() -> dict[str, Any]:
    return article(id=f"h-{next(_serial)}", categories=["tech"])


def _event() -> dict[str, Any]:
    recent = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "type": "click",
        "user_id": READER,
        "article_id": "seed",
        "feed_id": "f1",
        "position": 3,
        "ts": recent,
        "dwell_ms": 1200,
    }


def _experiment() -> dict[str, Any]:
    return {
        "name": f"exp-{next(_serial)}",
        "variants": [
            {"name": "control", "ranker": "tfidf", "params": {}, "weight": 1},
            {"name": "mmr", "ranker": "tfidf", "params": {"mmr_lambda": 0.7}, "weight": 1.5},
        ],
        "traffic": 0.5,
        "salt": "s1",
        "surface": "feed",
        "namespace": [0.0, 0.5],
    }


def _source() -> dict[str, Any]:
    return {
        "url": f"https://feeds.example.com/{next(_serial)}.xml",
        "categories": ["tech"],
        "poll_interval_seconds": 900,
        "enabled": False,
        "category_map": {"Technology": "tech"},
    }


def _source_patch() -> dict[str, Any]:
    return {
        "categories": ["tech"],
        "poll_interval_seconds": 600,
        "enabled": False,
        "category_map": {"AI": "tech"},
    }


ROUTES = [
    Route("POST", "/v1/articles", True, lambda: {"articles": [_article(), _article()]}),
    Route("DELETE", "/v1/articles/{article}", True, None),
    Route("PUT", "/v1/categories/{slug}", True, lambda: {"name": "Technology"}),
    Route("PUT", "/v1/users/{reader}/categories", False, lambda: {"categories": ["tech"]}),
    Route("PUT", "/v1/users/{reader}/categories/{slug}", False, None),
    Route("DELETE", "/v1/users/{reader}/categories/{slug}", False, None),
    Route("POST", "/v1/events", False, lambda: {"events": [_event(), _event()]}),
    Route("POST", "/v1/experiments", True, _experiment),
    Route("POST", "/v1/experiments/{name}/start", True, None),
    Route("POST", "/v1/experiments/{name}/stop", True, None),
    Route("POST", "/v1/sources", True, _source),
    Route("PATCH", "/v1/sources/{source}", True, _source_patch),
    Route("DELETE", "/v1/sources/{source}", True, None),
    # Only ever an unknown or malformed id: polling a real source would reach the network.
    Route("POST", "/v1/sources/{unknown_source}/poll", True, None),
]


@dataclass
class World:
    client: FlaskClient
    app: Flask
    admin: dict[str, str]
    reader: dict[str, str]
    source_id: str

    def fingerprint(self) -> tuple[Any, ...]:
        """What a write route could change, read back the way clients and operators do."""
        redis = self.app.extensions[EXTENSION].redis
        sources = self.client.get("/v1/sources", headers=self.admin).get_json()["sources"]
        return (
            self.client.get("/v1/categories").get_json(),
            redis.get(versions.CORPUS_VERSION_KEY),
            redis.xlen(STREAM_KEY),
            self.client.get(f"/v1/users/{READER}/categories", headers=self.reader).get_json(),
            self.client.get("/v1/experiments", headers=self.admin).get_json(),
            # A source's settings, not its poll state (which only polls change).
            [{k: v for k, v in s.items() if k != "state"} for s in sources],
        )


@pytest.fixture
def world(make_app: Callable[..., Flask]) -> World:
    """Two categories, an article, a reader who follows one, a draft experiment, a source."""
    app = make_app(rate_limit_enabled=False)  # thousands of requests from one reader
    client = app.test_client()
    tokens = Tokens(app.extensions[EXTENSION])
    admin, reader = tokens.admin(), tokens.user(READER)

    def made(response: Any, status: int = 200) -> Any:
        assert response.status_code == status, response.get_json()
        return response.get_json()

    for slug, name in (("tech", "Technology"), ("world", "World")):
        made(client.put(f"/v1/categories/{slug}", json={"name": name}, headers=admin), 201)
    seed = {"articles": [article(id="seed", categories=["tech"])]}
    assert made(client.post("/v1/articles", json=seed, headers=admin))["created"] == ["seed"]
    made(client.put(f"/v1/users/{READER}/categories/tech", headers=reader))
    draft = {**_experiment(), "name": "draft"}
    made(client.post("/v1/experiments", json=draft, headers=admin), 201)
    source = made(client.post("/v1/sources", json=_source(), headers=admin), 201)
    return World(client, app, admin, reader, source["id"])


def assert_answer(response: Any, before: tuple[Any, ...], world: World, sent: str) -> None:
    status = response.status_code
    assert status < 500, f"{status} for {sent}: {response.get_data()[:500]!r}"
    if 200 <= status < 300:
        return
    body = response.get_json(silent=True)
    assert isinstance(body, dict) and set(body) == {"error"}, f"{status}: {response.data[:300]!r}"
    error = body["error"]
    assert {"status", "code", "message"} <= set(error) <= {"status", "code", "message", "details"}
    assert error["status"] == status and isinstance(error["code"], str)
    assert isinstance(error["message"], str) and error["message"].strip(), error
    if status != 304:
        assert world.fingerprint() == before, f"a refused {sent} ({status}) wrote something"


@st.composite
def requests(draw: st.DrawFn, route: Route, world: World) -> tuple[str, Sent]:
    fill = {
        "reader": READER,
        "slug": draw(path_segment("world")),
        "article": draw(path_segment("seed")),
        "name": draw(path_segment("draft")),
        "source": draw(path_segment(world.source_id)),
        "unknown_source": draw(path_segment("0123456789ab")),
    }
    path = route.path.format(**fill)
    if route.body is None:
        body = draw(st.one_of(st.just(Raw("")), json_values))
    else:
        body = draw(hostile_bodies(route.body()))
    return path, draw(encoded(body))


@pytest.mark.parametrize("route", ROUTES, ids=str)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # one world per route, shared by its examples
    ],
)
@given(data=st.data())
def test_hostile_json_is_never_a_5xx_and_a_refusal_writes_nothing(
    world: World, route: Route, data: st.DataObject
) -> None:
    path, sent = data.draw(requests(route, world), label="request")
    headers = world.admin if route.admin else world.reader
    before = world.fingerprint()
    response = world.client.open(
        path, method=route.method, data=sent.data, content_type=sent.content_type, headers=headers
    )
    event(f"status {response.status_code}")  # shown by pytest --hypothesis-show-statistics
    assert_answer(response, before, world, f"{route.method} {path[:80]} {sent.data[:300]!r}")
