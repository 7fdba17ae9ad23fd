"""The learned ranker's scheduled training, on a thread of the worker beside its job loop.

A training reads the whole event stream and fits on it: seconds at 100k events, up to a
minute at a million on a loaded host. Run as a job, it held the worker's one job loop that
long, and every refit the writes meanwhile asked for waited behind it (the soak: with one
worker, the model 40 s behind the corpus when the load ended). On a thread of its own, the
job loop goes on taking refits, precomputes and polls; the training's lease
(feed.model.learning) still keeps it to one process at a time across workers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis

log = logging.getLogger(__name__)


class BackgroundTraining:
    """At most one training round at a time in this process, each on a daemon thread.

    A worker stopped mid-round abandons it (a round may outlast the stop's grace period): the
    training's lease then lapses by its TTL, and the next due round runs after that."""

    def __init__(self, train: Callable[[], object]) -> None:
        self._train = train  # one round: trains if due (feed.jobs.train_job)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> bool:
        """Start a round unless one is running here; whether one started."""
        with self._lock:
            if self.running:
                return False
            self._thread = threading.Thread(target=self._run, name="learned-training", daemon=True)
            self._thread.start()
            return True

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the round running, if any; whether none is left."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running

    def _run(self) -> None:
        try:
            outcome = self._train()
        except redis.RedisError as exc:  # the next check retries
            log.warning("learned ranker training skipped: %s", exc)
        except Exception:  # keep the worker; the next check retries
            log.exception("learned ranker training failed")
        else:
            log.info("learned ranker training: %s", outcome)
