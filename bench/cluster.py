"""Bench section 7: the cached feed on a three-master Redis Cluster next to a single Redis.

Two gunicorn services with the shipped config, one per backend, hold the same corpus, model,
readers and follows; runs alternate (single, cluster, single, cluster) under the same load.
"""

from __future__ import annotations

import random
from contextlib import ExitStack
from typing import TYPE_CHECKING

from api.tokens import issue_token
from feed import articles, subscriptions
from feed.connection import open_redis
from feed.reindex import reindex
from tests.redis_cluster import LocalCluster

if TYPE_CHECKING:
    from bench.run import Bench, LoadResult

SECTION = "7. cached feed: Redis Cluster vs single node (HTTP)"
TARGET_RATIO = 0.85  # the cluster may cost at most 15% of single-node throughput


def cluster_vs_single(bench: Bench) -> None:
    from bench.run import (
        INGEST_BATCH,
        PAGE_LIMIT,
        RUNS_PER_APP,
        Gunicorn,
        follow_sets,
        load_catalog,
        log,
        median,
        to_article,
    )

    profile = bench.profile
    settings = bench.settings()
    wire = bench.corpus(profile.feed_articles, "cluster")
    rng = random.Random(7)
    users = [f"reader-{n}" for n in range(profile.users)]
    follows = follow_sets(len(users), rng)
    auth = {u: f"Bearer {issue_token(settings, u)}" for u in users}
    targets = [(f"/v1/users/{u}/feed?limit={PAGE_LIMIT}", auth[u]) for u in users]

    with ExitStack() as stack:
        cluster = stack.enter_context(LocalCluster(bench.tmp / "cluster"))
        log(f"redis cluster on {cluster.url}")
        services: dict[str, Gunicorn] = {}
        for name, url in (("single", bench.server.url), ("cluster", cluster.url)):
            r = open_redis(url, socket_timeout=30, connect_timeout=5)
            r.flushall()
            load_catalog(r)
            for start in range(0, len(wire), INGEST_BATCH):
                chunk = wire[start : start + INGEST_BATCH]
                articles.upsert(r, [(i, to_article(a)) for i, a in enumerate(chunk)])
            reindex(r, live_window_days=settings.live_window_days)
            for user, followed in zip(users, follows, strict=True):
                subscriptions.replace(r, user, followed)
            r.close()
            env = bench.service_env(url)
            # RQ cannot use a cluster; nothing is enqueued here (no writes), but keep it valid.
            env["NEWSFEED_QUEUE_URL"] = bench.server.url
            server = Gunicorn(f"feed-{name}", "wsgi:app", env, bench.tmp)
            stack.callback(server.stop)
            services[name] = server.start()
            bench.wait_ready(server.port)
            bench.warm(server.port, users, auth)
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
