"""What gunicorn answers itself (limits, requests it cannot parse) is in the API's JSON error
shape, through real gunicorn with config/gunicorn.py: no HTML page, no parser internals."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from devtools.redis_server import RedisServer
from tests.live import LiveService, bearer, gunicorn
from tests.raw_http import raw_exchange

pytestmark = pytest.mark.slow

MAX_BODY = 64 * 1024  # NEWSFEED_MAX_REQUEST_BYTES for this service
HOST = b"Host: test\r\n"
READER = "Authorization: " + bearer("reader")["Authorization"]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    base = tmp_path_factory.mktemp("gunicorn-errors")
    with RedisServer(base / "redis", appendonly=False) as server:
        with gunicorn(
            base / "svc", server.url, workers=1, NEWSFEED_MAX_REQUEST_BYTES=str(MAX_BODY)
        ) as live:
            yield live


def request(head: str, *headers: str, body: bytes = b"") -> bytes:
    lines = [head, "Host: test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def assert_json_error(answer: tuple[int, dict[str, str], bytes], status: int, code: str) -> str:
    got, headers, body = answer
    assert got == status, (got, body[:300])
    assert headers["content-type"] == "application/json", headers
    assert headers["connection"] == "close", headers
    assert headers["x-content-type-options"] == "nosniff", headers
    error = json.loads(body)["error"]
    assert error["status"] == status and error["code"] == code, error
    assert set(error) <= {"status", "code", "message", "details"}, error
    message = str(error["message"])
    for internal in ("gunicorn", "html", "Traceback", "Invalid HTTP", "'", "LimitRequest"):
        assert internal not in message, message
    return message


def test_a_26kb_token_is_a_json_431_naming_the_header_limit(service: LiveService) -> None:
    token = "x" * 26_000
    answer = raw_exchange(
        service, request("GET /v1/categories HTTP/1.1", f"Authorization: {token}")
    )
    message = assert_json_error(answer, 431, "header_too_large")
    assert "8190 bytes" in message
    assert token[:100] not in answer[2].decode()


def test_a_huge_token_still_arriving_is_a_json_431_without_waiting_for_the_rest(
    service: LiveService,
) -> None:
    unfinished = b"GET /v1/categories HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer "
    answer = raw_exchange(service, unfinished + b"t" * 9000, timeout=5)
    message = assert_json_error(answer, 431, "header_too_large")
    assert "8190 bytes" in message


def test_a_10000_character_cursor_is_a_json_414(service: LiveService) -> None:
    cursor = "c" * 10_000
    answer = raw_exchange(service, request(f"GET /v1/users/u/feed?cursor={cursor} HTTP/1.1"))
    message = assert_json_error(answer, 414, "uri_too_long")
    assert "4094 bytes" in message


def test_too_many_headers_is_a_json_431(service: LiveService) -> None:
    many = [f"X-Extra-{n}: {n}" for n in range(120)]
    answer = raw_exchange(service, request("GET /v1/categories HTTP/1.1", *many))
    message = assert_json_error(answer, 431, "header_too_large")
    assert "100 request headers" in message


def test_a_head_that_never_ends_is_a_json_431_once_over_every_limit(
    service: LiveService,
) -> None:
    # Lines within the per-header limit, without the empty line that ends a head.
    lines = "".join(f"X-Pad-{n}: {'p' * 8000}\r\n" for n in range(110))
    data = f"GET /v1/categories HTTP/1.1\r\nHost: test\r\n{lines}".encode()
    answer = raw_exchange(service, data)
    assert_json_error(answer, 431, "header_too_large")


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"GET /v1/categories HTTP/1.1 extra\r\n" + HOST + b"\r\n", 400, "bad_request"),
        (b"G@T /v1/categories HTTP/1.1\r\n" + HOST + b"\r\n", 400, "bad_request"),
        (b"GET /v1/categories HTTP/7.1\r\n" + HOST + b"\r\n", 400, "bad_request"),
        (request("POST /v1/events HTTP/1.1", "Content-Length: abc"), 400, "bad_request"),
        (
            request("POST /v1/events HTTP/1.1", "Content-Length: 2", "Content-Length: 3"),
            400,
            "bad_request",
        ),
        (request("POST /v1/events HTTP/1.1", "Transfer-Encoding: zip"), 501, "not_implemented"),
        (request("GET /v1/categories HTTP/1.1", "Expect: teapot"), 417, "expectation_failed"),
        (
            request(
                "POST /v1/events HTTP/1.1",
                READER,
                "Content-Type: application/json",
                "Transfer-Encoding: chunked",
                body=b"zz\r\n",
            ),
            400,
            "bad_request",
        ),
        (b"GET /v1/categories HTTP/1.1\nHost: test\n\n", 400, "bad_request"),
    ],
    ids=[
        "request-line",
        "method",
        "version",
        "content-length",
        "two-content-lengths",
        "transfer-coding",
        "expect",
        "chunk-size",
        "bare-lf",
    ],
)
def test_a_request_gunicorn_cannot_parse_is_a_json_error(
    service: LiveService, data: bytes, status: int, code: str
) -> None:
    assert_json_error(raw_exchange(service, data), status, code)


def test_a_body_declared_over_the_limit_is_a_json_413_before_it_is_sent(
    service: LiveService,
) -> None:
    head = request(
        "POST /v1/events HTTP/1.1",
        "Content-Type: application/json",
        f"Content-Length: {MAX_BODY + 1}",
        READER,
    )
    message = assert_json_error(raw_exchange(service, head), 413, "payload_too_large")
    assert str(MAX_BODY) in message


def test_a_chunked_body_over_the_limit_is_a_json_413(service: LiveService) -> None:
    chunk = b"a" * 4096
    body = (b"1000\r\n" + chunk + b"\r\n") * (MAX_BODY // 4096 + 1) + b"0\r\n\r\n"
    data = request("POST /v1/events HTTP/1.1", "Transfer-Encoding: chunked", body=body)
    assert_json_error(raw_exchange(service, data), 413, "payload_too_large")


def test_the_service_still_answers_after_every_refusal(service: LiveService) -> None:
    reply = service.call("GET", "/v1/categories")
    assert reply.status == 200, reply.body
