"""Bench section 7: the cached feed on a three-master Redis Cluster next to a single Redis.

Two gunicorn services with the shipped config, one per backend, hold the same corpus, model,
readers and follows; runs alternate (single, cluster, single, cluster) under the same load.
"""

from __future__ import annotations

import random
from contextlib import ExitStack
from typing import Any

from bench.common import (
    PAGE_LIMIT,
    RUNS_PER_APP,
    follow_sets,
    load_catalog,
    log,
    median,
    store_corpus,
)
from bench.context import Bench
from bench.load import LoadResult
from bench.servers import Gunicorn
from feed.model.reindex import reindex
from feed.readers import subscriptions
from feed.readers.tokens import issue_token
from feed.storage.connection import open_redis

# The helper the test suite uses; bench/ borrows it until it moves out of tests/.
from tests.redis_cluster import LocalCluster

SECTION = "7. cached feed: Redis Cluster vs single node (HTTP)"
TARGET_RATIO = 0.85  # the cluster may cost at most 15% of single-node throughput


def cluster_vs_single(bench: Bench) -> None:
    profile = bench.profile
    settings = bench.settings()
    wire = bench.corpus(profile.feed_articles, "cluster")
    rng = random.Random(7)
    users = [f"reader-{n}" for n in range(profile.users)]
    follows = dict(zip(users, follow_sets(len(users), rng), strict=True))
    auth = {u: f"Bearer {issue_token(settings, u)}" for u in users}
    targets = [(f"/v1/users/{u}/feed?limit={PAGE_LIMIT}", auth[u]) for u in users]

    with ExitStack() as stack:
        cluster = stack.enter_context(LocalCluster(bench.tmp / "cluster"))
        log(f"redis cluster on {cluster.url}")
        services: dict[str, Gunicorn] = {}
        for name, url in (("single", bench.server.url), ("cluster", cluster.url)):
            _fill(bench, url, wire, follows)
            env = bench.service_env(url)
            # RQ cannot use a cluster; nothing is enqueued here (no writes), but keep it valid.
            env["NEWSFEED_QUEUE_URL"] = bench.server.url
            server = Gunicorn(f"feed-{name}", "wsgi:app", env, bench.tmp)
            stack.callback(server.stop)
            services[name] = server.start()
            bench.wait_ready(server.port)
            bench.warm(server.port, users, auth)
        runs = _alternate(bench, services, targets)
    _report(bench, runs)


def _fill(
    bench: Bench, url: str, wire: list[dict[str, Any]], follows: dict[str, list[str]]
) -> None:
    """The backend at ``url``, emptied, with the catalog, the corpus, its model and follows."""
    r = open_redis(url, socket_timeout=30, connect_timeout=5)
    r.flushall()
    load_catalog(r)
    store_corpus(r, wire)
    reindex(r, live_window_days=bench.settings().live_window_days)
    for user, followed in follows.items():
        subscriptions.replace(r, user, followed)
    r.close()


def _alternate(
    bench: Bench, services: dict[str, Gunicorn], targets: list[tuple[str, str]]
) -> dict[str, list[LoadResult]]:
    profile = bench.profile
    for name, server in services.items():
        log(f"warming up {name} for {profile.warmup_seconds:g}s")
        bench.load(server.port, targets, profile.warmup_seconds, bench.tmp)
    runs: dict[str, list[LoadResult]] = {name: [] for name in services}
    for run in range(RUNS_PER_APP):
        for name, server in services.items():
            result = bench.load(server.port, targets, profile.run_seconds, bench.tmp)
            runs[name].append(result)
            log(
                f"run {run + 1} feed on {name}: {result.rps:,.0f} req/s, "
                f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
                f"errors {result.errors}"
            )
    return runs


def _report(bench: Bench, runs: dict[str, list[LoadResult]]) -> None:
    rps = {name: median([r.rps for r in results]) for name, results in runs.items()}
    for name, results in runs.items():
        bench.report.add_load(SECTION, f"{name}: feed", results)
    ratio = rps["cluster"] / rps["single"]
    bench.report.add(
        SECTION,
        "cluster / single throughput",
        ratio,
        "",
        target=f">= {TARGET_RATIO:.2f}",
        ok=ratio >= TARGET_RATIO,
        note="3 masters on this machine, no replicas",
    )
    errors = sum(r.errors for results in runs.values() for r in results)
    bench.report.add(SECTION, "failed requests (all runs)", errors, "", target="0", ok=errors == 0)
