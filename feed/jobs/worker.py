"""The RQ worker that `newsfeed worker` runs (cli/worker.py): it keeps a liveness lease, so the
other workers requeue its jobs if it dies (feed/jobs/requeue.py), and it goes through a Redis
outage quietly: one warning when the outage starts, one line when it ends, where RQ logs
every retry."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

import redis
from redis.client import Pipeline
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from feed.jobs import requeue

log = logging.getLogger(__name__)

CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError)
# Waits between attempts to reach Redis again: doubling from the first to the cap, so an
# outage costs a few requests and the work resumes within the cap once Redis is back.
RECONNECT_FIRST_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 5.0
# What RQ logs on every retry of a lost connection (rq/worker/base.py), each a second or so.
_RQ_RETRY_MESSAGES = frozenset(
    {
        "Worker %s: could not connect to Redis instance: %s retrying in %d seconds...",
        "Worker %s: Redis connection timeout, quitting...",
    }
)


class RedisOutage(logging.Filter):
    """Whether this worker has lost Redis, and for how long; the backoff between attempts.

    As a filter on RQ's worker logger, it stands for RQ's own lines about the lost connection
    (its retries, and the errors its teardown meets): the first one starts the outage, logged
    once; ``recovered`` ends it, logged once.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._since: float | None = None
        self._delay = RECONNECT_FIRST_SECONDS

    @property
    def active(self) -> bool:
        return self._since is not None

    def lost(self, error: object) -> None:
        with self._lock:
            if self._since is not None:
                return
            self._since = time.monotonic()
        log.warning(
            "Redis unreachable (%s): reconnecting with backoff up to %gs",
            error,
            RECONNECT_MAX_SECONDS,
        )

    def recovered(self) -> None:
        if self._since is None:
            return
        with self._lock:
            since, self._since = self._since, None
            self._delay = RECONNECT_FIRST_SECONDS
        if since is not None:
            log.warning("Redis answers again after %.1fs; working", time.monotonic() - since)

    def next_delay(self) -> float:
        """How long to wait before the next attempt (doubling up to the cap)."""
        with self._lock:
            delay = self._delay
            self._delay = min(delay * 2, RECONNECT_MAX_SECONDS)
        return delay

    def filter(self, record: logging.LogRecord) -> bool:
        error: object = record.exc_info[1] if record.exc_info else None
        if record.msg in _RQ_RETRY_MESSAGES or isinstance(error, CONNECTION_ERRORS):
            if error is None and isinstance(record.args, tuple) and len(record.args) > 1:
                error = record.args[1]  # the retry message's error
            self.lost(error if error is not None else record.getMessage())
            return False
        return True


class NewsfeedWorker(SimpleWorker):
    """A SimpleWorker (each job runs in this process: the model stays loaded between
    precompute chunks, and the keeper and tick threads never meet a fork) that keeps a
    liveness lease while it works and tells ``outage`` whenever Redis answers it."""

    # RQ's own retries while it waits for jobs: 1 s, doubling up to this (RQ's default: 60 s).
    max_connection_wait_time = RECONNECT_MAX_SECONDS

    def __init__(
        self,
        queues: Sequence[Queue],
        *,
        connection: redis.Redis,
        liveness_redis: redis.Redis,
        stopping: threading.Event,
        outage: RedisOutage,
        on_start: Callable[[], None] = lambda: None,
        **kwargs: Any,
    ) -> None:
        # Sends CLIENT SETNAME: raises a ConnectionError while Redis is away.
        super().__init__(
            queues,
            name=requeue.worker_name(),
            connection=connection,
            serializer=JSONSerializer,
            **kwargs,
        )
        self._stopping = stopping
        self._outage = outage
        self._on_start = on_start
        self._liveness_redis = liveness_redis
        self._liveness = requeue.liveness(liveness_redis, self.name)

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        super().bootstrap(*args, **kwargs)
        # Alive before the first job is taken; renewed by a thread from now on.
        requeue.mark_alive(self._liveness_redis, self.name)
        self._liveness.start()
        self._outage.recovered()
        self._on_start()

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        super().heartbeat(timeout, pipeline)
        if pipeline is None:  # sent: Redis answers (RQ's dequeue loop retried through an outage)
            self._outage.recovered()

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        # Remembered across restarts of the work loop.
        self._stopping.set()
        super().request_stop(signum, frame)

    def dispose(self) -> None:
        """Stop what this worker started, whatever point its teardown reached (a Redis outage
        interrupts it): the liveness lease (its jobs, if any were left, are then requeued), and
        RQ's pubsub thread, which would otherwise retry its subscription for ever."""
        self._liveness.stop()
        thread = self.pubsub_thread
        if thread is not None and thread.is_alive():
            thread.stop()
            thread.join(timeout=1)
            try:
                self.pubsub.close()
            except redis.RedisError:
                pass
