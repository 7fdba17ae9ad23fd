"""Bench section 5: event ingestion over HTTP, devices posting batches of events at once."""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections.abc import Sequence

import redis

from bench.common import HOST, http_post, log, median, percentile
from bench.context import Bench
from feed.corpus import articles

SECTION = "5. events"
EVENT_BATCH = 100
EVENT_CLIENTS = 8
EVENTS_TARGET = 5000.0


def events(
    bench: Bench, port: int, users: Sequence[str], auth: dict[str, str], r: redis.Redis
) -> None:
    """Event ingestion: EVENT_CLIENTS devices posting batches of EVENT_BATCH events."""
    bodies = _bodies(users, auth, r)
    accepted = [0] * EVENT_CLIENTS
    latencies: list[list[float]] = [[] for _ in range(EVENT_CLIENTS)]
    deadline = time.monotonic() + bench.profile.run_seconds

    def device(slot: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        n = slot
        try:
            while time.monotonic() < deadline:
                body, token = bodies[n % len(bodies)]
                n += EVENT_CLIENTS
                t0 = time.perf_counter()
                payload = http_post(conn, "/v1/events", body, token, (202,))
                latencies[slot].append((time.perf_counter() - t0) * 1000)
                accepted[slot] += json.loads(payload)["accepted"]
        finally:
            conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=device, args=(s,)) for s in range(EVENT_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    flat = [ms for per in latencies for ms in per]
    log(f"events: {sum(accepted):,} accepted in {elapsed:.1f}s")
    note = f"{EVENT_CLIENTS} clients, batches of {EVENT_BATCH}"
    rate = sum(accepted) / elapsed
    bench.report.add(
        SECTION,
        "events accepted",
        rate,
        "ev/s",
        target=f">= {EVENTS_TARGET:,.0f}",
        ok=rate >= EVENTS_TARGET,
        note=note,
    )
    bench.report.add(SECTION, "batch latency p50", median(flat), "ms")
    bench.report.add(SECTION, "batch latency p99", percentile(flat, 99), "ms")


def _bodies(users: Sequence[str], auth: dict[str, str], r: redis.Redis) -> list[tuple[bytes, str]]:
    """One batch per user (about the first 1,000 articles of the timeline) and its token."""
    ids = [i.decode() for i in r.zrange(articles.TIMELINE_KEY, 0, 999)]
    rng = random.Random(7)
    bodies = []
    for user in users:
        batch = [
            {
                "type": rng.choice(("impression",) * 9 + ("click",)),
                "user_id": user,
                "article_id": rng.choice(ids),
                "feed_id": "bench",
                "position": n,
            }
            for n in range(EVENT_BATCH)
        ]
        bodies.append((json.dumps({"events": batch}).encode(), auth[user]))
    return bodies
