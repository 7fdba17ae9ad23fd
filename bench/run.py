"""Measure the service on this machine and print a report: ``python -m bench [--quick]``.

Everything runs against processes this script starts and stops itself: a private
redis-server (no persistence) in a temporary directory and gunicorn servers on free ports,
with the service's own gunicorn config. The sections, one module each:

1. cached-feed throughput and latency under 32 connections, next to a "floor" (a bare Flask
   endpoint answering one Redis GET of a same-size body, ``bench/floor.py``) on the
   same gunicorn settings, alternating floor and feed runs (``bench/feed_hits.py``);
2. cold-feed build time in-process through the real FeedService, and the bare ranker
   (``bench/cold.py``);
3. ingest rate through ``POST /v1/articles`` and through ``feed.corpus.articles.upsert``;
4. reindex time, split into read / fit / store;
5. event ingestion over HTTP (``bench/events.py``);
6. the cached feed with an experiment running (``bench/experiment.py``);
7. the cached feed on a Redis Cluster next to a single Redis (``bench/cluster.py``);
8. a reindex and the precompute after it, by `newsfeed worker` processes (``bench/jobs.py``);
9. breaking news: publish-to-visible with no refit, and a cold build with a reading history
   (``bench/breaking.py``, ``bench/history.py``).
10. slow clients: other readers' cached-feed latency while 64 connections trickle request
    bodies or heads a byte a second, on the shipped worker and on stock gthread
    (``bench/slow_clients.py``);
11. the learned ranker: `newsfeed train` on a million impressions, and its cold feed builds
    next to tfidf's (``bench/learned.py``);
12. model memory: PSS per worker and per host of 1 and 4 worker processes loading the model,
    each with its own copy and mapping the host's one file (``bench/memory.py``).

The report is printed as a table and written as JSON to ``var/bench.json``. The load
generator is ``wrk`` when it is on PATH, else a Python one (32 threads in a separate process).
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from bench.breaking import breaking_news
from bench.cluster import cluster_vs_single
from bench.cold import in_process, report_reindex
from bench.common import PER_IP_LIMIT, PROFILES, REPO, RUNS_PER_APP, Profile, exit_on_sigterm, log
from bench.context import Bench
from bench.feed_hits import feed_vs_floor
from bench.jobs import reindex_and_precompute
from bench.learned import learned_section
from bench.load import loadgen_worker, pick_load_generator
from bench.memory import memory_section
from bench.report import Report, machine_info, write_json
from bench.slow_clients import slow_clients
from devtools.redis_server import RedisServer

DEFAULT_OUTPUT = REPO / "var" / "bench.json"


def run(profile: Profile, loadgen: str, output: Path, only_feed: bool = False) -> Report:
    load_name, load = pick_load_generator(loadgen)
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    t_start = time.perf_counter()
    with ExitStack() as stack:
        stack.enter_context(exit_on_sigterm())
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="newsfeed-bench-")))
        server = stack.enter_context(RedisServer(tmp / "redis", appendonly=False))
        log(f"redis-server on {server.url}")
        report = Report(
            started, "quick" if profile.quick else "full", machine_info(server, load_name)
        )
        bench = Bench(profile, report, server, secrets.token_urlsafe(32), tmp, load)
        try:
            if only_feed:
                feed_vs_floor(bench)  # sections 1, 3 (HTTP ingest), 5 and 6
            else:
                _sections(bench)
        except BaseException as exc:
            report.notes.append(f"ABORTED, figures above are partial: {exc!r}")
            write_json(report, output)
            raise
        report_reindex(bench)
        report.notes += _notes(profile)
        report.details["elapsed_seconds"] = time.perf_counter() - t_start
    write_json(report, output)
    return report


def _sections(bench: Bench) -> None:
    """Every section, in the order that lets each reuse what the one before left in Redis."""
    feed_vs_floor(bench)
    cluster_vs_single(bench)
    for size in bench.profile.cold_sizes:
        in_process(bench, size)
        breaking_news(bench, size)  # on the corpus and model in_process left
        memory_section(bench, size)  # that model too
    reindex_and_precompute(bench)  # reuses the corpus the last size left
    learned_section(bench, bench.profile.cold_sizes[-1])  # that corpus too
    slow_clients(bench)  # its own small corpus, last: it flushes Redis


def _notes(profile: Profile) -> list[str]:
    notes = [
        f"HTTP runs: {RUNS_PER_APP} x {profile.run_seconds:g}s per app, alternating floor "
        f"and feed after a {profile.warmup_seconds:g}s warm-up each; throughput and "
        "latencies are medians over the runs.",
        "The load generator runs on the same machine as the servers and Redis.",
        "gunicorn: config/gunicorn.py as shipped (access log to /dev/null), "
        f"NEWSFEED_AUTO_REINDEX=false; {profile.users} users with 2-3 categories each.",
        f"Rate limits on: per user as shipped, per IP {PER_IP_LIMIT} (all load comes from "
        "one IP); both are counted on every /v1 request.",
        "Cold pages: each a new user, so each a full miss (rank, store, render).",
    ]
    if profile.quick:
        notes.append("--quick: 100k corpus skipped; the 100k targets are not checked.")
    return notes


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="5 s runs, 10k corpus only")
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator (auto: wrk when on PATH)",
    )
    parser.add_argument(
        "--feed-only",
        action="store_true",
        help="only the cached feed vs floor (with HTTP ingest, events, experiment)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON report path")
    parser.add_argument("--loadgen-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loadgen_worker:
        loadgen_worker(args.loadgen_worker)
        return
    report = run(PROFILES[args.quick], args.loadgen, args.output, args.feed_only)
    print(report.render())
    print(f"\nJSON: {args.output}")


if __name__ == "__main__":
    main()
