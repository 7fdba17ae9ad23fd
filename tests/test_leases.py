"""Leases and requeues (feed/storage/locks.py, feed/model/reindex.py, feed/jobs/requeue.py):
a fit's lock outlives its short TTL only while the fit renews it, a fit that lost it
publishes nothing over the fit that took it, and only the jobs of dead workers are requeued."""

from __future__ import annotations

import time
from datetime import timedelta

import redis
from rq import SimpleWorker
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.utils import now

from feed import jobs
from feed.corpus import articles
from feed.corpus.articles import Article
from feed.jobs import requeue
from feed.model import store as model_store
from feed.model import versions
from feed.model.reindex import fit_under_lock
from feed.storage import locks
from tests.factories import article

KEY = "nf:test:lease"


def test_a_renewed_lease_outlives_its_ttl_and_lapses_once_its_holder_stops(
    redis_client: redis.Redis,
) -> None:
    ttl_ms = 300
    token = locks.acquire(redis_client, KEY, ttl_ms)
    assert token is not None
    with locks.Lease(redis_client, KEY, token, ttl_ms) as lease:
        time.sleep(4 * ttl_ms / 1000)
        assert redis_client.get(KEY) == token.encode() and not lease.lost
    # The holder stopped renewing without releasing (as if it had died): gone within the TTL.
    time.sleep(2 * ttl_ms / 1000)
    assert not redis_client.exists(KEY)


def test_a_lease_taken_by_another_holder_is_lost_and_never_extended(
    redis_client: redis.Redis,
) -> None:
    ttl_ms = 300
    token = locks.acquire(redis_client, KEY, ttl_ms)
    assert token is not None
    with locks.Lease(redis_client, KEY, token, ttl_ms) as lease:
        redis_client.set(KEY, "next-holder", px=60_000)
        deadline = time.monotonic() + 5
        while not lease.lost and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lease.lost
        assert 59_000 < redis_client.pttl(KEY) <= 60_000  # the next holder's TTL, untouched
    assert not locks.renew(redis_client, KEY, token, ttl_ms)


def test_a_fit_that_lost_its_lease_publishes_nothing_over_the_fit_that_took_it(
    redis_client: redis.Redis,
) -> None:
    articles.upsert(redis_client, [(i, Article.from_card(article(), "")) for i in range(20)])
    newer: list[model_store.ModelMeta] = []

    def wanted() -> bool:
        # Meanwhile this fit's lease lapsed (a stalled process, Redis away past the TTL), and
        # another fit took the lock and published.
        redis_client.set(model_store.REINDEX_LOCK_KEY, "another-fit", px=60_000)
        newer.append(
            model_store.publish(
                redis_client,
                b"another fit's model",
                corpus_version=versions.read(redis_client).corpus,
                snapshot_at=time.time(),
                fitted_at=time.time(),
                articles=20,
                lock_token="another-fit",
            )
        )
        return True

    outcome = fit_under_lock(redis_client, live_window_days=30, wanted=wanted)
    assert outcome.won and outcome.lost and outcome.result is None
    assert versions.read(redis_client).model == newer[0].version
    assert redis_client.get(model_store.REINDEX_LOCK_KEY) == b"another-fit"  # not released
    # The loser's artifact is retired, not left behind for good.
    seq = int(redis_client.get(model_store.SEQ_KEY) or 0)
    assert seq == newer[0].version + 1
    assert 0 < redis_client.ttl(model_store.ARTIFACT_KEY % seq) <= model_store.RETIRED_TTL_SECONDS


def start_as(worker_name: str, r: redis.Redis) -> Job:
    """A poll job taken by a worker of this name, as RQ's own steps leave it once started."""
    job = jobs.enqueue_poll(r)
    worker = SimpleWorker(jobs.queues(r), name=worker_name, connection=r, serializer=JSONSerializer)
    taken = jobs.queue(r).dequeue_any(jobs.queues(r), None, connection=r, serializer=JSONSerializer)
    assert taken is not None and taken[0].id == job.id
    worker.prepare_execution(taken[0])
    worker.prepare_job_execution(taken[0])
    return taken[0]


def test_only_the_jobs_of_dead_workers_are_requeued(redis_client: redis.Redis) -> None:
    alive, dead = requeue.worker_name(), requeue.worker_name()
    requeue.mark_alive(redis_client, alive)
    running = start_as(alive, redis_client)
    abandoned = start_as(dead, redis_client)
    foreign = start_as("rq-cli-worker", redis_client)  # not ours: RQ's cleanup decides
    requeuer = requeue.Requeuer(redis_client, jobs.queues(redis_client))

    assert requeuer.scan() == []  # a lease just missing may be a live worker after an outage
    time.sleep(requeue.GRACE_SECONDS + 0.2)
    requeue.mark_alive(redis_client, alive)
    assert [job.id for job in requeuer.scan()] == [abandoned.id]

    assert abandoned.get_status(refresh=True) == JobStatus.QUEUED
    assert jobs.queue(redis_client).get_job_ids() == [abandoned.id]
    assert running.get_status(refresh=True) == JobStatus.STARTED
    assert foreign.get_status(refresh=True) == JobStatus.STARTED
    started = jobs.queue(redis_client).started_job_registry.get_job_ids(cleanup=False)
    assert sorted(started) == sorted([running.id, foreign.id])


def test_due_retries_are_moved_to_their_queue(redis_client: redis.Redis) -> None:
    queue = jobs.queue(redis_client)
    due = jobs.enqueue_poll(redis_client)
    later = jobs.enqueue_poll(redis_client)
    redis_client.delete(queue.key)
    queue.schedule_job(due, now() - timedelta(seconds=1))
    queue.schedule_job(later, now() + timedelta(hours=1))
    assert requeue.enqueue_due_retries(jobs.queues(redis_client)) == 1
    assert queue.get_job_ids() == [due.id]
    assert queue.scheduled_job_registry.get_job_ids(cleanup=False) == [later.id]
