"""Slow clients cannot starve others: through real gunicorn started as in production
(`gunicorn --config python:config.gunicorn wsgi:app`), 64 connections trickling a request a
byte at a time leave every other reader answered, and a slow request that does finish is
served like any other. (Latency figures are in the bench: `python -m bench.slow_clients`.)

Before config/workers.py, gthread handed each trickling connection a thread after its first
byte, and with 2 workers x 4 threads every feed request below timed out.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.demo import generate_articles
from devtools.redis_server import RedisServer
from tests.live import LiveService, bearer, gunicorn
from tests.raw_http import raw_exchange, read_response

pytestmark = pytest.mark.slow

SLOW_CONNECTIONS = 64
TRICKLE_INTERVAL = 0.5
READERS_REQUESTS = 20
# A behaviour, not a latency target: with the threads held, these requests never finish.
REQUEST_BOUND = 3.0
USER = "reader"
FEED = f"/v1/users/{USER}/feed?limit=10"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with RedisServer(tmp_path_factory.mktemp("slow-redis"), appendonly=False) as server:
        yield server.url


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[LiveService]:
    base = tmp_path_factory.mktemp("slow-clients")
    with gunicorn(base / "svc", redis_url, NEWSFEED_RATE_LIMIT_ENABLED="false") as live:
        live.ingest(generate_articles(200))
        slugs = [c["slug"] for c in live.call("GET", "/v1/categories").body["categories"]][:3]
        reply = live.call(
            "PUT",
            f"/v1/users/{USER}/categories",
            headers=bearer(USER),
            json_body={"categories": slugs},
        )
        assert reply.status == 200, reply.body
        assert live.call("GET", FEED, headers=bearer(USER)).status == 200
        yield live


def head(method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


AUTH = "Authorization: " + bearer(USER)["Authorization"]


class Trickler:
    """``count`` connections sending a request one byte per TRICKLE_INTERVAL, reopened when
    the server closes them, until stopped."""

    def __init__(self, service: LiveService, kind: str, count: int = SLOW_CONNECTIONS) -> None:
        self.base = service.base
        self.kind = kind
        self.count = count
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Trickler:
        self._thread.start()
        time.sleep(3 * TRICKLE_INTERVAL)  # every connection has sent its first bytes
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _open(self) -> socket.socket | None:
        try:
            sock = socket.create_connection(self.base, timeout=5)
            if self.kind == "body":
                sock.sendall(head("POST", "/v1/events", AUTH, "Content-Length: 100000"))
        except OSError:
            return None  # the server is stopping: tried again next tick
        return sock

    def _run(self) -> None:
        socks = [self._open() for _ in range(self.count)]
        byte = b"G" if self.kind == "head" else b" "
        while not self._stop.wait(TRICKLE_INTERVAL):
            for i, sock in enumerate(socks):
                try:
                    if sock is None:
                        raise ConnectionError("not connected")
                    sock.sendall(byte)
                except OSError:
                    if sock is not None:
                        sock.close()
                    socks[i] = self._open()
        for sock in socks:
            if sock is not None:
                sock.close()


def feed_requests(service: LiveService, count: int) -> list[str]:
    """``count`` feed requests on fresh connections: what went wrong with each, if anything."""
    problems = []
    for n in range(count):
        try:
            reply = service.call("GET", FEED, headers=bearer(USER), timeout=REQUEST_BOUND)
        except OSError as exc:
            problems.append(f"request {n}: no answer within {REQUEST_BOUND} s ({exc!r})")
            continue
        if reply.status != 200:
            problems.append(f"request {n}: {reply.status} {reply.body}")
    return problems


@pytest.mark.parametrize("kind", ["body", "head"])
def test_connections_trickling_a_request_leave_other_readers_answered(
    service: LiveService, kind: str
) -> None:
    with Trickler(service, kind):
        problems = feed_requests(service, READERS_REQUESTS)
    assert not problems, "\n".join(problems)


def trickle(sock: socket.socket, data: bytes, pieces: int, seconds: float) -> None:
    step = max(1, len(data) // pieces)
    for start in range(0, len(data), step):
        sock.sendall(data[start : start + step])
        time.sleep(seconds / pieces)


def follow_body() -> bytes:
    return json.dumps({"categories": ["business"]}).encode()


def test_a_slow_request_that_finishes_is_served(service: LiveService) -> None:
    body = follow_body()
    data = head(
        "PUT",
        f"/v1/users/{USER}/categories",
        AUTH,
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    )
    with socket.create_connection(service.base, timeout=10) as sock:
        trickle(sock, data + body, pieces=20, seconds=2.0)
        status, _, answer = read_response(sock)
    assert status == 200, answer
    assert json.loads(answer)["categories"] == ["business"]


def test_a_slow_chunked_request_that_finishes_is_served(service: LiveService) -> None:
    body = follow_body()
    chunked = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 5]), body[i : i + 5]) for i in range(0, len(body), 5)
    )
    data = head(
        "PUT",
        f"/v1/users/{USER}/categories",
        AUTH,
        "Content-Type: application/json",
        "Transfer-Encoding: chunked",
    )
    with socket.create_connection(service.base, timeout=10) as sock:
        trickle(sock, data + chunked + b"0\r\n\r\n", pieces=10, seconds=1.0)
        status, _, answer = read_response(sock)
    assert status == 200, answer


def test_a_client_that_waits_for_100_continue_gets_it_once(service: LiveService) -> None:
    body = follow_body()
    data = head(
        "PUT",
        f"/v1/users/{USER}/categories",
        AUTH,
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Expect: 100-continue",
    )
    with socket.create_connection(service.base, timeout=10) as sock:
        sock.sendall(data)
        interim = sock.recv(1024)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        status, _, answer = read_response(sock)
    assert status == 200, answer
    assert b"100 Continue" not in answer


def test_pipelined_requests_are_each_answered(service: LiveService) -> None:
    one = head("GET", "/v1/categories")
    with socket.create_connection(service.base, timeout=10) as sock:
        sock.sendall(one + one)
        first = read_response(sock)
        second = read_response(sock)
    assert first[0] == second[0] == 200


def test_a_request_not_received_in_time_is_a_json_408(tmp_path: Path, redis_url: str) -> None:
    with gunicorn(
        tmp_path / "svc", redis_url, workers=1, NEWSFEED_REQUEST_READ_TIMEOUT_SECONDS="1"
    ) as live:
        with socket.create_connection(live.base, timeout=10) as sock:
            sock.sendall(b"GET /v1/categories HTTP/1.1\r\nHost: te")
            started = time.monotonic()
            status, headers, answer = read_response(sock)
            waited = time.monotonic() - started
        assert status == 408 and headers["connection"] == "close", answer
        error = json.loads(answer)["error"]
        assert error["code"] == "request_timeout" and "1 s" in error["message"], error
        assert waited < 8, waited  # the deadline, plus the poller's one-second tick
        assert raw_exchange(live, head("GET", "/v1/categories"))[0] == 200


def test_slow_clients_do_not_hold_up_a_graceful_stop(tmp_path: Path, redis_url: str) -> None:
    # gthread waits out its whole graceful timeout (20 s) for threads held by slow clients.
    with gunicorn(tmp_path / "svc", redis_url, workers=1) as live:
        with Trickler(live, "body"):
            started = time.monotonic()
            live.process.send_signal(signal.SIGTERM)
            live.process.wait(timeout=30)
            stopped_in = time.monotonic() - started
    assert stopped_in < 15, stopped_in
