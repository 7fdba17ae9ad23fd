"""Request ids: taken from X-Request-ID when sane, made up otherwise, returned on every response
(errors and 429s too), and on every log line written while the request is handled."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from config.logs import RequestIdFilter, json_formatter, logging_config
from devtools.redis_server import RedisServer
from tests.conftest import Tokens
from tests.live import serve

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize(
    "sent",
    [
        "abc-123",
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "Root=1-5759e988-bd862e3fe1be46a994272793",
        "a" * 128,
    ],
)
def test_a_sane_request_id_comes_back(client: FlaskClient, sent: str) -> None:
    response = client.get("/v1/categories", headers={"X-Request-ID": sent})
    assert response.headers["X-Request-ID"] == sent


def test_without_one_each_request_gets_a_new_id(client: FlaskClient) -> None:
    first = client.get("/healthz").headers["X-Request-ID"]
    second = client.get("/healthz").headers["X-Request-ID"]
    assert GENERATED.fullmatch(first) and GENERATED.fullmatch(second)
    assert first != second


@pytest.mark.parametrize(
    "sent",
    [
        "",
        "a" * 129,
        "has space",
        'quote"d',
        "semi;colon",
        "-leading-dash",
        "caf\u00e9",
        '{"level": "ERROR"}',
    ],
)
def test_an_unusable_request_id_is_replaced(client: FlaskClient, sent: str) -> None:
    response = client.get("/v1/categories", headers={"X-Request-ID": sent})
    assert GENERATED.fullmatch(response.headers["X-Request-ID"])


def test_error_responses_carry_the_request_id(client: FlaskClient) -> None:
    cases = [
        client.get("/no/such/page", headers={"X-Request-ID": "r-404"}),
        client.get("/v1/users/alice/feed", headers={"X-Request-ID": "r-401"}),
        client.delete("/v1/categories", headers={"X-Request-ID": "r-405"}),
    ]
    assert [(r.status_code, r.headers["X-Request-ID"]) for r in cases] == [
        (404, "r-404"),
        (401, "r-401"),
        (405, "r-405"),
    ]


def test_a_rate_limited_answer_carries_the_request_id(make_app: Any) -> None:
    client = make_app(rate_limit_per_ip="1/minute").test_client()
    client.get("/v1/categories")
    response = client.get("/v1/categories", headers={"X-Request-ID": "r-429"})
    assert response.status_code == 429
    assert response.headers["X-Request-ID"] == "r-429"


def test_browsers_may_send_and_read_the_request_id(make_app: Any) -> None:
    client = make_app(cors_origins=("https://app.example.com",)).test_client()
    origin = {"Origin": "https://app.example.com"}
    response = client.get("/v1/categories", headers=origin)
    assert "X-Request-ID" in response.headers["Access-Control-Expose-Headers"]
    preflight = client.options(
        "/v1/categories",
        headers={
            **origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "x-request-id",
        },
    )
    assert "x-request-id" in preflight.headers["Access-Control-Allow-Headers"].lower()


def test_a_line_logged_while_handling_a_request_carries_its_id(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("kaboom")

    app.config["PROPAGATE_EXCEPTIONS"] = False  # answer 500 as in production
    # The filter and formatter the logging configuration puts on the app's stdout handler.
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level("ERROR"):
        response = app.test_client().get("/boom", headers={"X-Request-ID": "r-500"})
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "r-500"
    [record] = [r for r in caplog.records if r.name == "api.errors"]
    line = json.loads(json_formatter().format(record))
    assert line["request_id"] == "r-500"
    assert (line["level"], line["logger"], line["message"]) == (
        "ERROR",
        "api.errors",
        "unhandled error",
    )
    assert "RuntimeError: kaboom" in line["exc_info"]


def test_an_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="NEWSFEED_LOG_FORMAT"):
        logging_config("xml", "info")


EXPERIMENT = {
    "name": "logged",
    "variants": [
        {"name": "control", "ranker": "tfidf", "params": {}, "weight": 1},
        {"name": "fresh", "ranker": "latest", "params": {}, "weight": 1},
    ],
    "traffic": 1.0,
}


@pytest.mark.slow
def test_gunicorn_writes_json_lines_that_carry_the_request_id(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis, tokens: Tokens
) -> None:
    with serve(tmp_path, redis_server.url, NEWSFEED_LOG_LEVEL="info") as service:
        created = service.call(
            "POST",
            "/v1/experiments",
            headers={**service.admin, "X-Request-ID": "e2e-create"},
            json_body=EXPERIMENT,
        )
        assert created.status == 201
        assert created.header("X-Request-ID") == "e2e-create"
        made_up = service.call("GET", "/v1/categories").header("X-Request-ID")
    text = service.log_path.read_text().splitlines()
    # Lines the CLI prints before gunicorn starts are for people; the logs are JSON.
    lines = [json.loads(line) for line in text if line.startswith("{")]
    assert not [line for line in text if "e2e-create" in line and not line.startswith("{")]
    by_id: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_id.setdefault(str(line.get("request_id")), []).append(line)
    # The app's own line, written by feed/ inside the request, and gunicorn's access line.
    [app_line, access] = by_id["e2e-create"]
    assert (app_line["logger"], app_line["message"]) == (
        "feed.experiments",
        "experiment logged created",
    )
    assert (access["logger"], access["method"], access["path"], access["status"]) == (
        "gunicorn.access",
        "POST",
        "/v1/experiments",
        201,
    )
    assert made_up is not None and [line["path"] for line in by_id[made_up]] == ["/v1/categories"]
    assert any(line["logger"] == "gunicorn.error" for line in lines)  # gunicorn's own log too


@pytest.mark.slow
def test_text_logs_for_people_carry_the_request_id_too(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    with serve(
        tmp_path, redis_server.url, NEWSFEED_LOG_LEVEL="info", NEWSFEED_LOG_FORMAT="text"
    ) as service:
        headers = {**service.admin, "X-Request-ID": "e2e-text"}
        service.call("POST", "/v1/experiments", headers=headers, json_body=EXPERIMENT)
    tagged = [line for line in service.log_path.read_text().splitlines() if "e2e-text" in line]
    assert len(tagged) == 2
    assert any("feed.experiments [e2e-text] experiment logged created" in t for t in tagged)
    assert any('"POST /v1/experiments HTTP/1.1" 201' in t for t in tagged)
