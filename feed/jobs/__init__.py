"""Background work on RQ: refit the model, precompute first pages, poll RSS/Atom sources;
and the learned ranker's scheduled training, which workers run beside their job loop.

Web processes enqueue and never wait; `newsfeed worker` (cli/worker.py) runs the jobs. RQ
hands a job only its own JSON arguments, so the job functions find their connections and the
feed service in the :class:`Runtime` the worker installs once per process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any

import redis
from redis.client import Pipeline
from rq import Queue, Retry
from rq.job import Job
from rq.serializers import JSONSerializer

from config import Settings
from feed.exceptions import ServiceUnavailable
from feed.jobs import precompute
from feed.jobs.periodic import Periodic
from feed.jobs.training import BackgroundTraining
from feed.model import learning, versions
from feed.model import store as model_store
from feed.model.reindex import fit_under_lock
from feed.serving.service import FeedService
from feed.sources import polling
from feed.sources.fetch import FetchOptions
from feed.storage import locks
from feed.storage.connection import is_cluster, open_redis
from recommender.tfidf import TfidfRanker

log = logging.getLogger(__name__)

# Workers take jobs from the first queue first: a refit or a poll never waits behind a
# precompute, which a newer model makes moot anyway.
MAIN_QUEUE = "newsfeed"
PRECOMPUTE_QUEUE = "newsfeed-precompute"
QUEUE_NAMES = (MAIN_QUEUE, PRECOMPUTE_QUEUE)

# On the queue's Redis, next to RQ's own keys, which one transaction writes with them.
REINDEX_PENDING_KEY = "nf:{jobs}:reindex:pending"  # set from a request until its job starts
REINDEX_COVERED_KEY = "nf:{jobs}:reindex:covered"  # corpus version the newest started fit read

# A pending flag outlives its job only if the job was lost (the queue flushed): it is written
# with its job, in one transaction. Until it lapses, requests are not enqueued again.
PENDING_TTL_SECONDS = 5 * 60
# A reindex waits this long for another fit's lock (a live fit renews its lease; a dead one's
# lapses within seconds), then fails and is retried.
REINDEX_WAIT_SECONDS = 10 * 60
# Requests a started fit covers are moot until every process has loaded its model (about a
# second); kept as long as the job may wait and fit, since a fit that fails is retried (RETRY)
# and one whose worker died is requeued (feed/jobs/abandoned.py).
COVERED_TTL_SECONDS = REINDEX_WAIT_SECONDS

# A failed job is retried 10 s, 1 min and 5 min later (a Redis restart, a deploy), then kept
# in the failed registry for a week, listed by `newsfeed jobs --failed`.
RETRY = Retry(max=3, interval=[10, 60, 300])
FAILURE_TTL_SECONDS = 7 * 86_400
RESULT_TTL_SECONDS = 3600  # a finished job and its result stay readable this long
# A reindex may first wait for another fit's lock, then fits.
REINDEX_TIMEOUT_SECONDS = REINDEX_WAIT_SECONDS + 20 * 60
PRECOMPUTE_TIMEOUT_SECONDS = 10 * 60
POLL_TIMEOUT_SECONDS = 30 * 60  # every due source, one after another, each under its timeout
# The learned ranker (feed.model.learning) is retrained this long after its latest training,
# or sooner once this many events arrived since; workers look every LEARNED_CHECK_SECONDS.
LEARNED_TRAIN_SECONDS = 6 * 3600
LEARNED_TRAIN_EVENTS = 100_000
LEARNED_CHECK_SECONDS = 60.0

# Attempts of a request whose two keys changed under it (another request, a fit starting):
# each looks at them again, and one suffices unless fits start back to back.
REQUEST_ATTEMPTS = 3


class ReindexBusy(Exception):
    """Another fit kept the reindex lock past the wait, or this fit lost its lease before it
    could publish; the job fails and is retried.

    Not a FeedError: no client causes it, and it never reaches the API."""


@dataclass(frozen=True)
class Runtime:
    """What job functions work with, built once per worker process (cli/worker.py)."""

    redis: redis.Redis  # the service's data
    queue_redis: redis.Redis  # RQ's queues and this module's keys
    feed: FeedService
    live_window_days: float
    fetch: FetchOptions
    active_window_seconds: int
    precompute_max_users: int
    freshness_half_life_hours: float  # of the tfidf ranker the learned one must beat


_runtime: Runtime | None = None


def install(runtime: Runtime | None) -> None:
    """Make ``runtime`` the one this process's jobs use (None: none)."""
    global _runtime
    _runtime = runtime


def current() -> Runtime:
    if _runtime is None:
        raise RuntimeError("no job runtime installed: jobs run in `newsfeed worker`")
    return _runtime


def open_queue_redis(url: str, *, socket_timeout: float, connect_timeout: float) -> redis.Redis:
    """The queue's connection. RQ needs a standalone Redis: it runs MULTI over keys that a
    cluster would put in different slots (rq/rq#1048, #862, #2021)."""
    if is_cluster(url):
        raise RuntimeError(
            "RQ does not support Redis Cluster: set NEWSFEED_QUEUE_URL to a standalone Redis"
        )
    return open_redis(url, socket_timeout=socket_timeout, connect_timeout=connect_timeout)


def queue_url(settings: Settings) -> str:
    return settings.queue_url or settings.redis_url


def open_queue(settings: Settings) -> redis.Redis:
    """A connection to the job queue's Redis (the service's own unless configured apart)."""
    return open_queue_redis(
        queue_url(settings),
        socket_timeout=settings.redis_socket_timeout,
        connect_timeout=settings.redis_connect_timeout,
    )


def reindex_requester(settings: Settings) -> Callable[[int], object] | None:
    """What a web process's model keeper calls instead of fitting, in queue mode."""
    if settings.reindex_mode != "queue" or not settings.auto_reindex:
        return None
    return partial(request_reindex, open_queue(settings))


def queue(queue_redis: redis.Redis, name: str = MAIN_QUEUE) -> Queue:
    # JSON, not pickle: job arguments are ids and numbers, and nothing read from Redis is
    # ever unpickled.
    return Queue(name, connection=queue_redis, serializer=JSONSerializer)


def queues(queue_redis: redis.Redis) -> list[Queue]:
    return [queue(queue_redis, name) for name in QUEUE_NAMES]


# -- enqueueing (web processes, the CLI, the periodic tick, and jobs themselves)


def request_reindex(queue_redis: redis.Redis, corpus_version: int) -> Job | None:
    """Enqueue a fit that will cover ``corpus_version``, unless one is already on its way.

    A burst of writes enqueues one job: the first request sets the pending flag, and the job
    clears it only once it holds the reindex lock, just before it reads the corpus. A write
    after that finds the flag clear and enqueues the next fit, unless the running fit has
    already read its version.

    The flag and its job are written in one transaction (WATCH on both keys): Redis holds both
    or neither. A frozen Redis runs a request its caller gave up on once it is continued, and
    a flag set apart from its job would then promise a fit nobody enqueued, holding off every
    later request until its TTL lapsed.
    """
    for _ in range(REQUEST_ATTEMPTS):
        with queue_redis.pipeline() as pipe:
            try:
                pipe.watch(REINDEX_PENDING_KEY, REINDEX_COVERED_KEY)
                pending, covered = pipe.mget(REINDEX_PENDING_KEY, REINDEX_COVERED_KEY)
                if pending is not None or int(covered or -1) >= corpus_version:
                    return None  # one is on its way, or a started fit read this version
                pipe.multi()
                pipe.set(REINDEX_PENDING_KEY, corpus_version, ex=PENDING_TTL_SECONDS)
                job = enqueue_reindex(queue_redis, pipeline=pipe)
                pipe.execute()
                return job
            except redis.WatchError as exc:
                locks.raise_if_disconnected(exc)
    return None  # fits keep starting: the newest one, or the next request, covers it


def enqueue_reindex(
    queue_redis: redis.Redis, *, force: bool = False, pipeline: Pipeline | None = None
) -> Job:
    """Enqueue a fit; ``force`` fits even when the model covers the corpus version (the live
    window moves with the clock, not only with writes). On ``pipeline``, queued in its
    transaction, for the caller to execute."""
    return queue(queue_redis).enqueue_call(
        reindex_job,
        kwargs={"force": force},
        timeout=REINDEX_TIMEOUT_SECONDS,
        result_ttl=RESULT_TTL_SECONDS,
        failure_ttl=FAILURE_TTL_SECONDS,
        retry=RETRY,
        description="reindex (periodic)" if force else "reindex",
        pipeline=pipeline,
    )


def enqueue_precompute(
    r: redis.Redis, queue_redis: redis.Redis, model_version: int, *, since: float, limit: int
) -> list[Job]:
    """Enqueue first-page builds for the readers active since ``since``, in chunks."""
    chunks = precompute.chunks(r, since=since, limit=limit)
    if not chunks:
        return []
    return queue(queue_redis, PRECOMPUTE_QUEUE).enqueue_many(
        [
            Queue.prepare_data(
                precompute_job,
                args=(model_version, chunk),
                timeout=PRECOMPUTE_TIMEOUT_SECONDS,
                result_ttl=RESULT_TTL_SECONDS,
                failure_ttl=FAILURE_TTL_SECONDS,
                retry=RETRY,
                description=f"precompute {len(chunk)} first pages for model {model_version}",
            )
            for chunk in chunks
        ]
    )


def enqueue_poll(queue_redis: redis.Redis) -> Job:
    return queue(queue_redis).enqueue_call(
        poll_job,
        timeout=POLL_TIMEOUT_SECONDS,
        result_ttl=RESULT_TTL_SECONDS,
        failure_ttl=FAILURE_TTL_SECONDS,
        retry=RETRY,
        description="poll due RSS/Atom sources",
    )


def periodic_tasks(
    queue_redis: redis.Redis,
    *,
    reindex_seconds: float,
    poll_seconds: float,
    learned_check_seconds: float = LEARNED_CHECK_SECONDS,
    training: BackgroundTraining | None = None,
) -> list[Periodic]:
    """What workers do on a timer (an interval of 0 turns a task off): enqueue a forced fit and
    a poll, and start the learned ranker's training if due, on ``training``'s thread rather
    than as a job, which would hold the job loop, and the fits writes ask for, for its length."""
    trainer = training if training is not None else BackgroundTraining(train_job)
    return [
        Periodic("reindex", reindex_seconds, lambda: enqueue_reindex(queue_redis, force=True)),
        Periodic("poll-sources", poll_seconds, lambda: enqueue_poll(queue_redis)),
        Periodic("train-learned", learned_check_seconds, trainer.start),
    ]


# -- the jobs (run by a worker)


@dataclass(frozen=True)
class ReindexOutcome:
    model: int | None  # the version published; None when there was nothing to fit
    corpus: int  # the corpus version read before the fit
    articles: int = 0
    seconds: float = 0.0
    precompute_jobs: int = 0


def reindex_job(force: bool = False) -> dict[str, Any]:
    """Fit and publish a model, then enqueue precompute for the recently active readers."""
    rt = current()
    outcome = run_reindex(
        rt.redis, rt.queue_redis, live_window_days=rt.live_window_days, force=force
    )
    if outcome.model is not None and rt.precompute_max_users > 0:
        chunks = enqueue_precompute(
            rt.redis,
            rt.queue_redis,
            outcome.model,
            since=time.time() - rt.active_window_seconds,
            limit=rt.precompute_max_users,
        )
        outcome = replace(outcome, precompute_jobs=len(chunks))
    return asdict(outcome)


def train_job(
    events_needed: int = LEARNED_TRAIN_EVENTS, every_seconds: float = LEARNED_TRAIN_SECONDS
) -> dict[str, Any]:
    """Train the learned ranker when due (feed.model.learning.due); the training's lease keeps
    it to one worker at a time, and its gate decides whether the model is published. Workers
    run it on a thread of their own (BackgroundTraining), never as a job."""
    rt = current()
    if not learning.due(
        rt.redis, events_needed=events_needed, every_seconds=every_seconds, now=time.time()
    ):
        return {"trained": False, "reason": "not due"}
    try:
        model = learning.serving_model(rt.redis, rt.live_window_days)
    except ServiceUnavailable as exc:
        return {"trained": False, "reason": str(exc)}
    baseline = TfidfRanker(half_life_hours=rt.freshness_half_life_hours)
    outcome = learning.train_and_publish(rt.redis, model, baseline)
    return {"trained": outcome.won, **outcome.as_json()}


def precompute_job(model_version: int, user_ids: Sequence[str]) -> dict[str, Any]:
    """Build first pages for ``model_version``, giving way to a fit a write asked for."""
    rt = current()
    return asdict(
        precompute.build(
            rt.redis, rt.feed, model_version, user_ids, lambda: fit_requested(rt.queue_redis)
        )
    )


def fit_requested(queue_redis: redis.Redis) -> bool:
    """Whether a fit was asked for and has not started (request_reindex's pending flag)."""
    return bool(queue_redis.exists(REINDEX_PENDING_KEY))


def poll_job() -> dict[str, Any]:
    """Poll the due sources; new or changed articles request a fit."""
    rt = current()
    outcomes = polling.poll_due(rt.redis, rt.fetch)
    changed = sum(len(o.created) + len(o.updated) for o in outcomes)
    if changed:
        request_reindex(rt.queue_redis, versions.read(rt.redis).corpus)
    return {
        "polled": len(outcomes),
        "failed": sum(o.status == "error" for o in outcomes),
        "articles": changed,
    }


def run_reindex(
    r: redis.Redis,
    queue_redis: redis.Redis,
    *,
    live_window_days: float,
    force: bool = False,
    wait_seconds: float = REINDEX_WAIT_SECONDS,
) -> ReindexOutcome:
    """Fit under the reindex lock, waiting for another fit to finish first (up to
    ``wait_seconds``): this job may have been requested by a write that fit did not see."""
    corpus = 0

    def wanted() -> bool:
        nonlocal corpus
        # Only now: until here, writes find the flag set and count on this job.
        queue_redis.delete(REINDEX_PENDING_KEY)
        corpus = versions.read(r).corpus
        queue_redis.set(REINDEX_COVERED_KEY, corpus, ex=COVERED_TTL_SECONDS)
        published = model_store.current_meta(r)
        return force or published is None or published.corpus_version < corpus

    outcome = fit_under_lock(
        r, live_window_days=live_window_days, wait_seconds=wait_seconds, wanted=wanted
    )
    if not outcome.won:
        raise ReindexBusy(f"another fit held the reindex lock for {wait_seconds:.0f}s")
    if outcome.lost:
        raise ReindexBusy("the reindex lease lapsed before the fit could publish")
    result = outcome.result
    if result is None:
        return ReindexOutcome(None, corpus)
    return ReindexOutcome(
        result.meta.version,
        result.meta.corpus_version,
        result.meta.articles,
        result.read_seconds + result.fit_seconds + result.store_seconds,
    )
