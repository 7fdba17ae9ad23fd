"""What every bench section shares: the load shape, the profiles, statistics and HTTP helpers."""

from __future__ import annotations

import http.client
import json
import math
import random
import signal
import socket
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import redis

from devtools.demo import DEMO_CATEGORIES
from feed.corpus import articles, categories
from feed.corpus.articles import Article

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"

# Load shape: the same gunicorn settings for the feed and the floor.
WORKERS = 2
THREADS = 4
CONNECTIONS = 32
PAGE_LIMIT = 20
PER_IP_LIMIT = "10000000/minute"
RUNS_PER_APP = 2  # floor, feed, floor, feed: medians over the runs

INGEST_BATCH = 1000
STARTUP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Profile:
    quick: bool
    run_seconds: float
    warmup_seconds: float
    feed_articles: int
    users: int
    cold_users: int
    cold_sizes: tuple[int, ...]


PROFILES = {
    False: Profile(False, 15.0, 3.0, 10_000, 300, 50, (10_000, 100_000)),
    True: Profile(True, 5.0, 1.0, 10_000, 200, 50, (10_000,)),
}


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100.0
    low = math.floor(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def http_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def http_post(
    conn: http.client.HTTPConnection, path: str, body: bytes, token: str, expect: Sequence[int]
) -> bytes:
    """POST a JSON body on an open connection; the response body, unless the status is not
    one of ``expect``."""
    conn.request(
        "POST",
        path,
        body=body,
        headers={"Authorization": token, "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    payload = response.read()
    if response.status not in expect:
        raise RuntimeError(f"POST {path}: {response.status} {payload[:300]!r}")
    return payload


def first_page(port: int, path: str, headers: dict[str, str], header: str = "") -> Any:
    """A first page on a new connection (so on any worker): its items, or ``header``'s value."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:300]!r}")
        return response.getheader(header) if header else json.loads(body)["items"]
    finally:
        conn.close()


def to_article(wire: dict[str, Any]) -> Article:
    return Article.from_card(wire, wire.get("body", ""))


def store_corpus(r: redis.Redis, wire: Sequence[dict[str, Any]]) -> None:
    """Upsert demo articles in batches of INGEST_BATCH, untimed (a section's setup)."""
    for start in range(0, len(wire), INGEST_BATCH):
        chunk = wire[start : start + INGEST_BATCH]
        articles.upsert(r, [(i, to_article(a)) for i, a in enumerate(chunk)])


def load_catalog(r: redis.Redis) -> None:
    for slug, name in DEMO_CATEGORIES.items():
        categories.put(r, slug, name)


def follow_sets(count: int, rng: random.Random) -> list[list[str]]:
    slugs = sorted(DEMO_CATEGORIES)
    return [sorted(rng.sample(slugs, rng.choice((2, 3)))) for _ in range(count)]


@contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every process this script started is stopped."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
