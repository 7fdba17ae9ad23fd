"""What the job queues hold: depths per state and the newest failures (`newsfeed jobs`, metrics)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import redis
from rq import Worker
from rq.job import Job
from rq.serializers import JSONSerializer

from feed.jobs import queues


@dataclass(frozen=True)
class FailedJob:
    id: str
    description: str
    ended_at: datetime | None
    error: str  # the exception's last line


def queue_depths(queue_redis: redis.Redis) -> dict[str, int]:
    """Jobs per state over every queue, and the workers alive; read-only (no cleanup)."""
    depths = dict.fromkeys(("queued", "started", "scheduled", "deferred", "failed", "finished"), 0)
    for q in queues(queue_redis):
        depths["queued"] += q.count
        depths["started"] += q.started_job_registry.get_job_count(cleanup=False)
        depths["scheduled"] += q.scheduled_job_registry.get_job_count(cleanup=False)
        depths["deferred"] += q.deferred_job_registry.get_job_count(cleanup=False)
        depths["failed"] += q.failed_job_registry.get_job_count(cleanup=False)
        depths["finished"] += q.finished_job_registry.get_job_count(cleanup=False)
    depths["workers"] = Worker.count(connection=queue_redis)
    return depths


def failed_jobs(queue_redis: redis.Redis, limit: int = 20) -> list[FailedJob]:
    """The newest failed jobs (those out of retries), newest first."""
    found: list[FailedJob] = []
    for q in queues(queue_redis):
        registry = q.failed_job_registry
        ids = registry.get_job_ids(0, limit - 1, desc=True)
        for job in Job.fetch_many(ids, connection=queue_redis, serializer=JSONSerializer):
            if job is None:
                continue
            result = job.latest_result()
            text = (result.exc_string if result else None) or ""
            lines = text.strip().splitlines()
            found.append(
                FailedJob(job.id, job.description or "", job.ended_at, lines[-1] if lines else "")
            )
    found.sort(key=lambda j: j.ended_at.timestamp() if j.ended_at else 0.0, reverse=True)
    return found[:limit]


@dataclass(frozen=True)
class ActiveJob:
    id: str
    queue: str
    state: str  # "started" (a worker runs it) or "queued"
    description: str
    enqueued_at: datetime | None
    started_at: datetime | None


def active_jobs(queue_redis: redis.Redis, limit: int = 20) -> list[ActiveJob]:
    """The jobs running now, then the next ones to run (at most ``limit`` of each per queue),
    in the order workers take them; read-only (no cleanup)."""
    found: list[ActiveJob] = []
    for state in ("started", "queued"):
        for q in queues(queue_redis):
            if state == "started":
                ids = q.started_job_registry.get_job_ids(0, limit - 1, cleanup=False)
            else:
                ids = q.get_job_ids(0, limit)
            jobs = Job.fetch_many(ids, connection=queue_redis, serializer=JSONSerializer)
            found.extend(
                ActiveJob(
                    job.id, q.name, state, job.description or "", job.enqueued_at, job.started_at
                )
                for job in jobs
                if job is not None
            )
    return found
