"""Bench section 6: the cached feed with a two-variant experiment, and assignment's cost."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Sequence

from bench.common import HOST, http_post, log, median
from bench.context import Bench
from bench.load import LoadResult
from bench.servers import Gunicorn
from config import Settings
from feed.experiments.assignment import Experiment, Variant, assign, dump_running, parse_running
from feed.readers.tokens import issue_token

SECTION = "6. feed with an experiment running"
ASSIGNMENT_TARGET_US = 200.0
FLOOR_TARGET_RATIO = 0.80  # with an experiment running, at least this share of the floor


def with_experiment(
    bench: Bench,
    feed: Gunicorn,
    targets: list[tuple[str, str]],
    users: Sequence[str],
    auth: dict[str, str],
    settings: Settings,
    baseline: list[LoadResult],
    floor: list[LoadResult],
) -> None:
    """The cached feed again, with a two-variant experiment covering every reader."""
    _start_experiment(feed.port, settings)
    bench.warm(feed.port, users, auth)  # each variant's lists, as readers would
    result = bench.load(feed.port, targets, bench.profile.run_seconds, bench.tmp)
    base_rps = median([b.rps for b in baseline])
    base_p50 = median([b.p50_ms for b in baseline])
    log(f"feed with experiment: {result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms")
    report = bench.report
    report.add(
        SECTION,
        "feed throughput",
        result.rps,
        "req/s",
        note=f"without: {base_rps:,.0f} req/s (section 1)",
    )
    report.add(
        SECTION, "feed p50", result.p50_ms, "ms", note=f"without: {base_p50:.2f} ms (section 1)"
    )
    report.add(SECTION, "feed p99", result.p99_ms, "ms")
    floor_rps = median([f.rps for f in floor])
    report.add(
        SECTION,
        "feed / floor throughput",
        result.rps / floor_rps,
        "",
        target=f">= {FLOOR_TARGET_RATIO:.2f}",
        ok=result.rps >= FLOOR_TARGET_RATIO * floor_rps,
        note=f"the floor: {floor_rps:,.0f} req/s (section 1); exposures buffered, not a round "
        "trip per page",
    )
    report.add(SECTION, "errors", result.errors, "", target="0", ok=result.errors == 0)
    cost = assignment_cost_us()
    report.add(
        SECTION,
        "assignment per request",
        cost,
        "us",
        target=f"< {ASSIGNMENT_TARGET_US:g} us",
        ok=cost < ASSIGNMENT_TARGET_US,
        note="parse_running + assign, in-process, median",
    )


def _start_experiment(port: int, settings: Settings) -> None:
    """Define and start the experiment "bench" (tfidf against latest, half each)."""
    admin = f"Bearer {issue_token(settings, 'bench-admin', admin=True)}"
    definition = {
        "name": "bench",
        "traffic": 1.0,
        "variants": [
            {"name": "control", "ranker": "tfidf", "params": {}, "weight": 1},
            {"name": "fresh", "ranker": "latest", "params": {}, "weight": 1},
        ],
    }
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        http_post(conn, "/v1/experiments", json.dumps(definition).encode(), admin, (201,))
        http_post(conn, "/v1/experiments/bench/start", b"", admin, (200,))
    finally:
        conn.close()


def assignment_cost_us() -> float:
    """Median cost of deciding a reader's variant, as the feed does on every request."""
    definition = Experiment(
        name="bench",
        traffic=1.0,
        salt="bench",
        variants=(Variant("control", "tfidf", {}, 1.0), Variant("fresh", "latest", {}, 1.0)),
        status="running",
    )
    raw = dump_running([definition])
    samples = []
    for n in range(20_000):
        fresh = bytes(raw)  # a new object per request, as Redis returns it
        t0 = time.perf_counter()
        assign(parse_running(fresh), f"user-{n}")
        samples.append((time.perf_counter() - t0) * 1e6)
    return median(samples)
