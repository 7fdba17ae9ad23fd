"""Schemathesis against the generated OpenAPI document: no 5xx, every response as documented.

Every operation gets valid and invalid generated requests (bodies, path and query
parameters), sent in process through the WSGI app with a token that may make them: an
admin token, or one whose subject is the path's (or the first event's) user. Checks: no
server error; status code, content type and headers documented; the body conforms to the
schema documented for its status (the error shape included); schema-valid requests are not
refused as malformed, and schema-violating ones are refused.

`NEWSFEED_FUZZ_EXAMPLES` sets the generated examples per operation (default 15, for CI;
`make fuzz` runs 500); runs are reproducible, and `NEWSFEED_FUZZ_SEED` picks another seed.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api import create_app
from feed.ids import is_valid_id
from tests.conftest import TEST_SECRET, Tokens
from tests.factories import demo_corpus

EXAMPLES = int(os.environ.get("NEWSFEED_FUZZ_EXAMPLES", "15"))
SEED = int(os.environ.get("NEWSFEED_FUZZ_SEED", "0"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    positive_data_acceptance,
    negative_data_rejection,
]
# schemathesis' defaults: what a schema-valid request may get, and a schema-violating one.
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429", "5xx"]
# Where the API answers otherwise on purpose, and why.
OPERATION_CHECKS: list[dict[str, Any]] = [
    # A batch is stored with its invalid items rejected one by one (`rejected` in the answer).
    {"method": "POST", "path": "/v1/articles", "rejected": [*REJECTED, "200"]},
    {"method": "POST", "path": "/v1/events", "rejected": [*REJECTED, "202"]},
    # A cursor is opaque and signed: only one this service issued is valid (400 invalid_cursor).
    {"method": "GET", "path": "/v1/users/{user_id}/feed", "accepted": [*ACCEPTED, "400"]},
    # Beyond its schema a definition must make sense: each ranker's own parameters, distinct
    # variant names, namespace start < end (422 invalid_experiment or validation_error).
    {"method": "POST", "path": "/v1/experiments", "accepted": [*ACCEPTED, "422"]},
    # A feed url must be an absolute http(s) URL with a host, which a JSON schema cannot say.
    {"method": "POST", "path": "/v1/sources", "accepted": [*ACCEPTED, "422"]},
]
UNUSED_REDIS = "redis://127.0.0.1:9/0"  # never connected to: the document needs no Redis
READER = "fuzz-reader"  # follows a category and is in the running experiment
EXPERIMENT = {
    "name": "fuzz-exp",
    "variants": [
        {"name": "control", "ranker": "tfidf", "params": {}, "weight": 1},
        {"name": "latest", "ranker": "latest", "params": {}, "weight": 1},
    ],
    "traffic": 1.0,
}


def _operation_config(entry: dict[str, Any]) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    if "accepted" in entry:
        checks["positive_data_acceptance"] = {"expected-statuses": entry["accepted"]}
    if "rejected" in entry:
        checks["negative_data_rejection"] = {"expected-statuses": entry["rejected"]}
    # One `include-name` (the label): separate method and path filters would match either.
    return {"include-name": f"{entry['method']} {entry['path']}", "checks": checks}


def _load_schema() -> Any:
    """The OpenAPI document as the app serves it (generating it touches no Redis).

    Loaded at import so that pytest parametrizes over the operations; the requests go to the
    `app` fixture, which has a real Redis.
    """
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {
                "mode": "all",
                "max-examples": EXAMPLES,
                "database": "none",
                # The test signs the Authorization header itself (see `authorize`).
                "with-security-parameters": False,
            },
            "operations": [_operation_config(entry) for entry in OPERATION_CHECKS],
        }
    )
    app = create_app({"redis_url": UNUSED_REDIS, "jwt_secret": TEST_SECRET})
    return schemathesis.openapi.from_wsgi("/openapi.json", app, config=config)


schema = _load_schema()


@pytest.fixture
def corpus(client: FlaskClient, tokens: Tokens) -> None:
    """A small corpus with a model, a reader with a follow, and a running experiment."""
    admin = tokens.admin()
    demo_corpus(client, admin, count=120)
    reader = tokens.user(READER)
    assert client.put(f"/v1/users/{READER}/categories/business", headers=reader).status_code == 200
    assert client.post("/v1/experiments", json=EXPERIMENT, headers=admin).status_code == 201
    assert client.post("/v1/experiments/fuzz-exp/start", headers=admin).status_code == 200


def authorize(case: schemathesis.Case, tokens: Tokens) -> None:
    """A token that may make this request, so that it reaches the view instead of a 403."""
    user_id = (case.path_parameters or {}).get("user_id")
    if user_id is None and case.path == "/v1/events":
        user_id = _first_event_user(case.body)
    if user_id is None:
        headers = tokens.admin()
    else:
        # An id outside the id rule cannot be a token's subject; the request gets 400 invalid_id.
        headers = tokens.user(user_id if is_valid_id(str(user_id)) else READER)
    case.headers = {**(case.headers or {}), **headers}


def _first_event_user(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("events"), list) and body["events"]:
        first = body["events"][0]
        if isinstance(first, dict) and isinstance(first.get("user_id"), str):
            return first["user_id"]
    return None


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,  # one corpus per operation, shared by its examples
    ],
)
def test_api_conforms_to_its_schema(
    case: schemathesis.Case, app: Flask, tokens: Tokens, corpus: None
) -> None:
    authorize(case, tokens)
    case.call_and_validate(app=app, checks=CHECKS)


def test_real_resources_conform_to_the_schema(
    app: Flask, client: FlaskClient, tokens: Tokens, corpus: None
) -> None:
    """What generated ids rarely reach: stored articles, a followed feed page by page, an
    experiment with exposures and clicks, one without any, and a deletion."""
    admin, reader = tokens.admin(), tokens.user(READER)

    def call(method: str, path: str, headers: dict[str, str], **kwargs: Any) -> Any:
        case = schema[path][method].Case(headers=headers, **kwargs)
        response = case.call_and_validate(app=app, checks=CHECKS)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    feed_path = "/v1/users/{user_id}/feed"
    page = call("GET", feed_path, reader, path_parameters={"user_id": READER}, query={"limit": 5})
    assert page["experiment"] == "fuzz-exp" and page["items"] and page["next_cursor"]
    query = {"limit": 5, "cursor": page["next_cursor"]}
    call("GET", feed_path, reader, path_parameters={"user_id": READER}, query=query)

    article_id = page["items"][0]["id"]
    call("GET", "/v1/articles/{article_id}", {}, path_parameters={"article_id": article_id})
    events = [
        {"type": kind, "user_id": READER, "article_id": article_id, "feed_id": page["feed_id"]}
        for kind in ("impression", "click", "read")
    ]
    events.append({"type": "impression", "user_id": READER, "article_id": "no-such-article"})
    result = call("POST", "/v1/events", reader, body={"events": events})
    assert result["accepted"] == 3 and len(result["rejected"]) == 1

    name = {"name": "fuzz-exp"}
    results = call("GET", "/v1/experiments/{name}/results", admin, path_parameters=name)
    assert results["variants"][0]["relative_lift"] is None  # the control's
    call("POST", "/v1/experiments/{name}/stop", admin, path_parameters=name)
    draft = {**EXPERIMENT, "name": "fuzz-draft"}
    call("POST", "/v1/experiments", admin, body=draft)
    call("GET", "/v1/experiments/{name}/results", admin, path_parameters={"name": "fuzz-draft"})
    call("GET", "/v1/experiments", admin)

    call("DELETE", "/v1/articles/{article_id}", admin, path_parameters={"article_id": article_id})
    call("GET", "/v1/categories", {})


def test_weights_near_the_float_maximum(
    app: Flask, client: FlaskClient, tokens: Tokens, corpus: None
) -> None:
    """Found by this fuzzer: finite weights whose sum overflowed were a 500 at creation, and
    their results had NaN in the JSON. Weights are relative: these mean an even split."""
    admin = tokens.admin()
    overflow = {
        **EXPERIMENT,
        "name": "overflow",
        "traffic": 0.1,
        "variants": [
            {"name": "a", "ranker": "tfidf", "weight": 1.0},
            {"name": "b", "ranker": "tfidf", "weight": 1.797693134862316e305},
        ],
    }
    refused = client.post("/v1/experiments", json=overflow, headers=admin)
    assert refused.status_code == 422, refused.json  # "a" would get no users at all

    even = {**EXPERIMENT, "name": "even"}
    even["variants"] = [{**v, "weight": 1e308} for v in EXPERIMENT["variants"]]
    assert client.post("/v1/experiments/fuzz-exp/stop", headers=admin).status_code == 200
    assert client.post("/v1/experiments", json=even, headers=admin).status_code == 201
    assert client.post("/v1/experiments/even/start", headers=admin).status_code == 200
    for n in range(20):
        user = f"reader-{n}"
        assert client.get(f"/v1/users/{user}/feed", headers=tokens.user(user)).status_code == 200

    case = schema["/v1/experiments/{name}/results"]["GET"].Case(
        path_parameters={"name": "even"}, headers=admin
    )
    response = case.call_and_validate(app=app, checks=CHECKS)
    results = json.loads(response.text, parse_constant=_no_constants)
    assert [v["weight"] for v in results["variants"]] == [0.5, 0.5]
    assert sum(v["users"] for v in results["variants"]) == 20


def _no_constants(name: str) -> None:
    raise AssertionError(f"{name} is not JSON")
