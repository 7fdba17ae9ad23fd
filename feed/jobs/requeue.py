"""Jobs going back on their queue: those whose worker died mid-run, and retries now due.

A running job sits in its queue's StartedJobRegistry until its worker records the outcome.
A worker that dies first (kill -9, out of memory, a lost host, a work loop ended by a Redis
outage) leaves it "started": RQ gives it up only when the execution's TTL runs out (the job
timeout plus a minute, half an hour for a reindex), then retries it later or fails it. Our
workers instead each keep a liveness lease (``ALIVE_KEY``, a few seconds, renewed every
second by a thread), and every worker puts the started jobs of a worker whose lease lapsed
back on their queue at once, keeping their retries: every job here (a refit, a precompute, a
poll) is idempotent.

RQ's scheduler, which moves due retries (``RETRY``) to their queue, runs as a child process
that a Redis outage ends, and that its worker restarts only at its ten-minute maintenance;
``enqueue_due_retries`` does the same work as a periodic task (feed/jobs/periodic.py) instead.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence

import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import BaseRegistry
from rq.utils import current_timestamp, parse_composite_key

from feed.storage import locks

log = logging.getLogger(__name__)

# Set by a live worker, per RQ worker name; only workers named with WORKER_PREFIX keep one,
# so jobs run by any other RQ worker are left to RQ's own cleanup.
ALIVE_KEY = "nf:{jobs}:worker:%s"
WORKER_PREFIX = "nf-"
ALIVE_TTL_MS = 5_000
RENEW_SECONDS = ALIVE_TTL_MS / 1000 / locks.RENEWALS_PER_TTL
# A job is requeued once its worker's lease has been seen missing for this long: after a Redis
# outage longer than the TTL every lease is gone, and live workers renew theirs within a
# second of Redis coming back.
GRACE_SECONDS = 3.0


def worker_name() -> str:
    """A name for a new RQ worker that keeps a liveness lease."""
    return f"{WORKER_PREFIX}{uuid.uuid4().hex}"


def mark_alive(r: redis.Redis, name: str) -> bool:
    """Tell the other workers that worker ``name`` is alive, for the next ``ALIVE_TTL_MS``."""
    r.set(ALIVE_KEY % name, 1, px=ALIVE_TTL_MS)
    return True


def liveness(r: redis.Redis, name: str) -> locks.Renewer:
    """The thread that keeps worker ``name`` alive for the others: started once the worker
    marked itself alive, before it takes a job; stopped once it will take no more."""
    return locks.Renewer(f"liveness {name}", RENEW_SECONDS, lambda: mark_alive(r, name))


class Requeuer:
    """Finds the started jobs of dead workers and requeues them; one per worker process, which
    calls ``scan`` every second or so (a job is requeued on the first scan ``GRACE_SECONDS``
    after its worker was first seen dead)."""

    def __init__(self, r: redis.Redis, queues: Sequence[Queue]) -> None:
        self._redis = r
        self._queues = tuple(queues)
        self._suspects: dict[tuple[str, str], float] = {}  # (queue, entry) -> first seen dead

    def scan(self) -> list[Job]:
        """The jobs requeued by this scan."""
        now = time.monotonic()
        suspects: dict[tuple[str, str], float] = {}
        requeued: list[Job] = []
        for queue in self._queues:
            registry = queue.started_job_registry
            for raw in self._redis.zrange(registry.key, 0, -1):
                entry = raw.decode()
                if self._alive(queue, entry):
                    continue
                first_seen = self._suspects.get((queue.name, entry), now)
                if now - first_seen < GRACE_SECONDS:
                    suspects[(queue.name, entry)] = first_seen
                    continue
                job = self._requeue(queue, registry, entry)
                if job is not None:
                    requeued.append(job)
        self._suspects = suspects
        return requeued

    def _alive(self, queue: Queue, entry: str) -> bool:
        job_id, _ = parse_composite_key(entry)
        name = self._redis.hget(Job.key_for(job_id), "worker_name")
        if name is None:  # the job is gone: nothing to run, only the entry to drop
            return False
        worker = name.decode()
        if not worker.startswith(WORKER_PREFIX):
            return True  # not ours: RQ's cleanup handles it when its execution expires
        return bool(self._redis.exists(ALIVE_KEY % worker))

    def _requeue(self, queue: Queue, registry: BaseRegistry, entry: str) -> Job | None:
        """Put the entry's job back on its queue, in one transaction with dropping the entry,
        unless the entry changed meanwhile (another worker requeued it, or it finished)."""
        job_id, _ = parse_composite_key(entry)
        with self._redis.pipeline() as pipe:
            try:
                pipe.watch(registry.key, Job.key_for(job_id))
                if pipe.zscore(registry.key, entry) is None:
                    return None
                job = queue.fetch_job(job_id)
                pipe.multi()
                pipe.zrem(registry.key, entry)
                started = job is not None and job.get_status(refresh=False) == JobStatus.STARTED
                if job is not None and started:
                    queue.enqueue_job(job, pipeline=pipe, at_front=True)
                pipe.execute()
            except redis.WatchError:
                return None  # the next scan looks again
        if job is None or not started:
            return None
        log.warning(
            "requeued %s (%s): its worker %s stopped",
            job.id,
            job.description,
            job.worker_name,
        )
        return job


def enqueue_due_retries(queues: Sequence[Queue]) -> int:
    """Move the retries now due from each queue's ScheduledJobRegistry to the queue, in one
    transaction per queue; answers how many moved."""
    moved = 0
    for queue in queues:
        registry = queue.scheduled_job_registry
        with queue.connection.pipeline() as pipe:
            try:
                pipe.watch(registry.key)
                ids = [i.decode() for i in pipe.zrangebyscore(registry.key, 0, current_timestamp())]
                if not ids:
                    continue
                found = Job.fetch_many(
                    ids, connection=queue.connection, serializer=queue.serializer
                )
                pipe.multi()
                for job_id, job in zip(ids, found, strict=True):
                    if job is not None:
                        queue.enqueue_job(job, pipeline=pipe)
                    pipe.zrem(registry.key, job_id)
                pipe.execute()
            except redis.WatchError:
                continue  # another worker moved them meanwhile
        moved += len(ids)
    return moved
