"""Bench section 1: the cached feed over HTTP next to a floor; section 3's HTTP ingest.

The floor is a bare Flask endpoint answering one Redis GET of a same-size body
(``bench/floor.py``) on the same gunicorn settings; floor and feed runs alternate. A third
server, the feed without rate limits, shows what limiting costs. Sections 5 and 6 run on the
same feed server afterwards (``bench/events.py``, ``bench/experiment.py``).
"""

from __future__ import annotations

import http.client
import json
import random
import time
from contextlib import ExitStack
from dataclasses import asdict
from typing import Any

import redis

from bench.app_cpu import app_cpu
from bench.common import (
    HOST,
    INGEST_BATCH,
    PAGE_LIMIT,
    RUNS_PER_APP,
    follow_sets,
    http_get,
    http_post,
    log,
    median,
    percentile,
)
from bench.context import Bench
from bench.events import events
from bench.experiment import with_experiment
from bench.load import LoadResult
from bench.servers import Gunicorn, WorkerWatch
from config import ENV_PREFIX, Settings
from feed.readers import subscriptions
from feed.readers.tokens import issue_token

SECTION = "1. cached feed vs floor (HTTP)"
# Where bench/floor.py reads its body (not imported: it needs NEWSFEED_REDIS_URL set).
FLOOR_KEY = "bench:floor:body"
UNLIMITED = "feed, no rate limits"
FEED_TARGET_RATIO = 0.85
P99_TARGET_RATIO = 1.3  # the feed's p99 at most this times the floor's

# (name, server, targets): one server's load, in the order runs alternate.
Runs = tuple[tuple[str, Gunicorn, list[tuple[str, str]]], ...]


def feed_vs_floor(bench: Bench) -> None:
    """Sections 1, 3 (HTTP ingest), 5 and 6, on three gunicorn servers this starts."""
    r = bench.fresh_db()
    env = bench.service_env(bench.server.url)
    feed = Gunicorn("feed", "wsgi:app", env, bench.tmp)
    floor = Gunicorn("floor", "bench.floor:app", env, bench.tmp)
    # A reference: the same service without rate limits, to show what limiting costs.
    unlimited = Gunicorn(
        UNLIMITED, "wsgi:app", {**env, ENV_PREFIX + "RATE_LIMIT_ENABLED": "false"}, bench.tmp
    )
    # Stopped when this phase ends, or on any error on the way.
    with ExitStack() as servers:
        for server in (feed, floor, unlimited):
            servers.callback(server.stop)
            server.start()
        _on_servers(bench, r, feed, floor, unlimited)


def _on_servers(
    bench: Bench, r: redis.Redis, feed: Gunicorn, floor: Gunicorn, unlimited: Gunicorn
) -> None:
    profile = bench.profile
    settings = bench.settings()
    http_ingest(bench, feed.port, settings, bench.corpus(profile.feed_articles, "feed"))
    bench.time_reindex(r, profile.feed_articles)
    bench.wait_ready(feed.port)
    bench.wait_ready(unlimited.port)

    rng = random.Random(1)
    users = [f"reader-{n}" for n in range(profile.users)]
    for user, followed in zip(users, follow_sets(len(users), rng), strict=True):
        subscriptions.replace(r, user, followed)
    auth = {u: f"Bearer {issue_token(settings, u)}" for u in users}
    body, cold_ms = bench.warm(feed.port, users, auth)
    r.set(FLOOR_KEY, body)
    status, _, floor_body = http_get(floor.port, "/floor")
    if status != 200 or len(floor_body) != len(body):
        raise RuntimeError("the floor does not serve the stored page")

    feed_targets = [(f"/v1/users/{u}/feed?limit={PAGE_LIMIT}", auth[u]) for u in users]
    floor_targets = [("/floor", auth[u]) for u in users]
    servers: Runs = (
        ("floor", floor, floor_targets),
        ("feed", feed, feed_targets),
        (UNLIMITED, unlimited, feed_targets),
    )
    runs, recycled, misses, cpu_us = _alternate(bench, r, servers)
    report_http(bench, runs, recycled, misses, len(body), cold_ms)
    report_cpu(bench, runs, cpu_us)
    app_cpu(bench, users, auth)
    events(bench, feed.port, users, auth, r)
    with_experiment(bench, feed, feed_targets, users, auth, settings, runs["feed"], runs["floor"])


def _alternate(
    bench: Bench, r: redis.Redis, servers: Runs
) -> tuple[dict[str, list[LoadResult]], dict[str, int], int, dict[str, list[float]]]:
    """A warm-up of each server, then RUNS_PER_APP rounds of runs: results, workers recycled
    per server, feed builds during the feed runs, and each run's worker CPU per request (us)."""
    profile = bench.profile
    runs: dict[str, list[LoadResult]] = {name: [] for name, _, _ in servers}
    recycled = dict.fromkeys(runs, 0)
    cpu_us: dict[str, list[float]] = {name: [] for name in runs}
    misses = 0
    for name, server, targets in servers:
        log(f"warming up {name} for {profile.warmup_seconds:g}s")
        bench.load(server.port, targets, profile.warmup_seconds, bench.tmp)
    for run in range(RUNS_PER_APP):
        for name, server, targets in servers:
            builds_before = _lock_writes(r)
            with WorkerWatch(server) as watch:
                result = bench.load(server.port, targets, profile.run_seconds, bench.tmp)
            recycled[name] += watch.recycled
            if name != "floor":
                misses += _lock_writes(r) - builds_before
            runs[name].append(result)
            cpu_us[name].append(watch.cpu_seconds * 1e6 / max(result.requests, 1))
            log(
                f"run {run + 1} {name}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
                f"p99 {result.p99_ms:.2f} ms, CPU {cpu_us[name][-1]:.0f} us/request, "
                f"errors {result.errors}"
            )
    return runs, recycled, misses, cpu_us


def _lock_writes(r: redis.Redis) -> int:
    """Feed builds leave a SET (the single-flight lock); a pure hit run issues none."""
    stats = r.info("commandstats").get("cmdstat_set", {})
    return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0


def report_cpu(
    bench: Bench, runs: dict[str, list[LoadResult]], cpu_us: dict[str, list[float]]
) -> None:
    """Where the time goes: the gunicorn workers' CPU time per request served, per server.

    Throughput on a shared machine moves with the load generator and other work; CPU per
    request is what a change to the request path saves (or costs) whatever the machine does.
    """
    for name in runs:
        report_line = ", ".join(f"{us:.0f}" for us in cpu_us[name])
        bench.report.add(
            SECTION,
            f"{name}: worker CPU per request",
            median(cpu_us[name]),
            "us",
            note=f"user+system of the workers over requests served; runs: {report_line}",
        )
    floor = median(cpu_us["floor"])
    if floor > 0:
        bench.report.add(
            SECTION,
            "feed / floor CPU per request",
            median(cpu_us["feed"]) / floor,
            "",
            note="the floor: Flask + gunicorn + one Redis GET",
        )
    bench.report.details["http_cpu_us_per_request"] = cpu_us


def http_ingest(bench: Bench, port: int, settings: Settings, wire: list[dict[str, Any]]) -> None:
    admin = f"Bearer {issue_token(settings, 'bench-admin', admin=True)}"
    bodies = [
        json.dumps({"articles": wire[i : i + INGEST_BATCH]}).encode()
        for i in range(0, len(wire), INGEST_BATCH)
    ]
    conn = http.client.HTTPConnection(HOST, port, timeout=120)
    rates: list[float] = []
    total = 0.0
    try:
        for body in bodies:
            t0 = time.perf_counter()
            payload = http_post(conn, "/v1/articles", body, admin, (200,))
            elapsed = time.perf_counter() - t0
            created = len(json.loads(payload)["created"])
            if created != INGEST_BATCH:
                raise RuntimeError(f"POST /v1/articles created {created} of {INGEST_BATCH}")
            rates.append(created / elapsed)
            total += elapsed
    finally:
        conn.close()
    log(f"HTTP ingest of {len(wire):,} in {total:.1f}s")
    bench.report.add(
        "3. ingest",
        f"HTTP POST /v1/articles, {len(wire) // 1000}k",
        median(rates),
        "art/s",
        note=f"median of {len(rates)} batches of {INGEST_BATCH}, one client",
    )
    bench.report.details["ingest_http_batch_rates"] = rates


def report_http(
    bench: Bench,
    runs: dict[str, list[LoadResult]],
    recycled: dict[str, int],
    misses: int,
    body_bytes: int,
    cold_ms: list[float],
) -> None:
    report = bench.report
    rps = {name: median([r.rps for r in results]) for name, results in runs.items()}
    for name in ("floor", "feed"):
        report.add_load(SECTION, name, runs[name])
    ratio = rps["feed"] / rps["floor"]
    report.add(
        SECTION,
        "feed / floor throughput",
        ratio,
        "",
        target=f">= {FEED_TARGET_RATIO:.2f}",
        ok=ratio >= FEED_TARGET_RATIO,
        note="as shipped: rate limits, metrics, request ids on",
    )
    p99 = {name: median([r.p99_ms for r in results]) for name, results in runs.items()}
    report.add(
        SECTION,
        "feed / floor p99",
        p99["feed"] / p99["floor"],
        "",
        target=f"<= {P99_TARGET_RATIO:g}",
        ok=p99["feed"] <= P99_TARGET_RATIO * p99["floor"],
    )
    report.add(
        SECTION,
        "reference: feed without rate limits",
        rps[UNLIMITED],
        "req/s",
        note=f"{rps[UNLIMITED] / rps['floor']:.3f} of the floor; runs: "
        + ", ".join(f"{r.rps:,.0f}" for r in runs[UNLIMITED]),
    )
    errors = sum(r.errors for results in runs.values() for r in results)
    report.add(SECTION, "failed requests (all runs)", errors, "", target="0", ok=errors == 0)
    report.add(SECTION, "feed builds during feed runs", misses, "", target="0", ok=misses == 0)
    report.add(
        SECTION,
        "page body size",
        body_bytes,
        "bytes",
        note=f"{PAGE_LIMIT} items; the floor serves this page",
    )
    report.add(
        SECTION,
        "cold first page over HTTP p50",
        percentile(cold_ms, 50),
        "ms",
        note=f"warm-up of {len(cold_ms)} users, sequential, one client",
    )
    for name in runs:
        report.add(
            SECTION,
            f"{name}: workers recycled in runs",
            recycled[name],
            "",
            note="gunicorn max_requests",
        )
    report.details["http_runs"] = {
        name: [asdict(r) | {"rps": r.rps} for r in results] for name, results in runs.items()
    }
