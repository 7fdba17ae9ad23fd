"""Bench section 8: a reindex and the precompute after it, done by real `newsfeed worker`
processes (rq SimpleWorker: one job at a time each), with one worker and with two.

The corpus is the one section 4 left in Redis when it has the size wanted (100k articles; 10k
with --quick), and every active reader follows 2-3 categories. Timed from the enqueue: the
reindex until its model is published, the precompute from then until every chunk is done.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import redis
from rq import Worker

from api.extensions import EXTENSION
from bench.common import follow_sets, log, store_corpus
from bench.context import Bench
from config import ENV_PREFIX
from feed import jobs
from feed.corpus import articles
from feed.jobs import precompute
from feed.model import versions
from feed.readers import activity, subscriptions
from feed.services import Services

SECTION = "8. reindex + precompute by `newsfeed worker` (rq SimpleWorker processes)"
SIZES = {False: (100_000, 10_000), True: (10_000, 1_000)}  # quick -> (articles, active readers)
WORKER_COUNTS = (1, 2)
SAMPLE = 50  # readers whose next request is checked to be a hit
TIMEOUT_S = 900.0


def reindex_and_precompute(bench: Bench) -> None:
    size, readers = SIZES[bench.profile.quick]
    r, users = _prepare(bench, size, readers)
    for count in WORKER_COUNTS:
        _with_workers(bench, r, count, size, readers)
    hits = _next_requests_hit(bench, users[:: max(1, readers // SAMPLE)][:SAMPLE])
    bench.report.add(
        SECTION, "next first page a cache hit", hits, f"of {SAMPLE}", target=str(SAMPLE)
    )


def _prepare(bench: Bench, size: int, readers: int) -> tuple[redis.Redis, list[str]]:
    """A corpus of ``size`` (the one in Redis when it has that size) and ``readers`` active
    readers following 2-3 categories each."""
    r = bench.r
    if articles.count(r) != size:
        r = bench.fresh_db()
        store_corpus(r, bench.corpus(size, f"jobs{size}"))
    users = [f"active-{n}" for n in range(readers)]
    for user, followed in zip(users, follow_sets(readers, random.Random(8)), strict=True):
        subscriptions.replace(r, user, followed)
    activity.touch(r, users, time.time())
    log(f"{readers:,} active readers over {size:,} articles")
    return r, users


def _with_workers(bench: Bench, r: redis.Redis, count: int, size: int, readers: int) -> None:
    """One reindex and its precompute, with ``count`` workers running: timed and reported."""
    with workers(bench, count, readers) as alive:
        wait(lambda: alive() == count, f"{count} workers to register")
        reindex_s, precompute_s, chunks = _one_run(r)
    rate = readers / precompute_s
    log(f"{count} worker(s): reindex {reindex_s:.1f}s, precompute {precompute_s:.1f}s")
    label = f"{size // 1000}k articles, {readers // 1000}k readers"
    name = f"{count} worker{'s' if count > 1 else ''}"
    bench.report.add(
        SECTION, f"{label}, {name}: reindex", reindex_s, "s", note="enqueue to published"
    )
    bench.report.add(
        SECTION,
        f"{label}, {name}: precompute",
        precompute_s,
        "s",
        note=f"{chunks} jobs of {precompute.CHUNK} readers",
    )
    bench.report.add(SECTION, f"{label}, {name}: precompute rate", rate, "readers/s")
    bench.report.details[f"jobs_{count}_workers"] = {
        "articles": size,
        "readers": readers,
        "reindex_seconds": reindex_s,
        "precompute_seconds": precompute_s,
        "precompute_jobs": chunks,
    }


def _one_run(r: redis.Redis) -> tuple[float, float, int]:
    before = versions.read(r).model
    finished = jobs.queue(r, jobs.PRECOMPUTE_QUEUE).finished_job_registry
    done_before = finished.get_job_count(cleanup=False)
    t0 = time.perf_counter()
    job = jobs.enqueue_reindex(r, force=True)
    wait(lambda: versions.read(r).model > before, "the model")
    t1 = time.perf_counter()
    wait(lambda: job.get_status(refresh=True) == "finished", "the reindex job")
    result: dict[str, Any] = job.return_value() or {}
    chunks: int = result["precompute_jobs"]
    # A cheap check (one ZCARD), so that this process takes no CPU from the workers.
    wait(lambda: finished.get_job_count(cleanup=False) - done_before == chunks, "the precompute")
    return t1 - t0, time.perf_counter() - t1, chunks


def _next_requests_hit(bench: Bench, sample: list[str]) -> int:
    with bench.app() as app:
        svc: Services = app.extensions[EXTENSION]
        return sum(svc.feed.page(user, precompute.PAGE_LIMIT).cache_hit for user in sample)


@contextmanager
def workers(bench: Bench, count: int, readers: int) -> Iterator[Callable[[], int]]:
    """``count`` `newsfeed worker` processes; yields how many are registered."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(
        {
            ENV_PREFIX + "REDIS_URL": bench.server.url,
            ENV_PREFIX + "JWT_SECRET": bench.secret,
            ENV_PREFIX + "LOG_LEVEL": "warning",
            ENV_PREFIX + "LOG_FORMAT": "text",
            ENV_PREFIX + "REINDEX_INTERVAL_SECONDS": "0",  # only the fits this bench asks for
            ENV_PREFIX + "SOURCE_POLL_SECONDS": "0",
            ENV_PREFIX + "PRECOMPUTE_MAX_USERS": str(readers),
            ENV_PREFIX + "DATA_DIR": str(bench.tmp / "data"),
        }
    )
    newsfeed = Path(sys.executable).with_name("newsfeed")
    r = bench.r
    with ExitStack() as stack:
        for n in range(count):
            log_file = stack.enter_context(open(bench.tmp / f"worker-{n}.log", "ab"))
            process = subprocess.Popen(
                [str(newsfeed), "worker"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            stack.callback(_stop, process)
        yield lambda: Worker.count(connection=r)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # warm: finishes its job, deregisters
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: only what we started
            process.wait()


def wait(check: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)
