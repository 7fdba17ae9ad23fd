"""Timed work shared by every worker: each task runs at most once per interval, cluster-wide.

rq 3.0's CronScheduler enqueues from every process that runs it (it has no lock, and is
meant to run as a single `rq cron` process), so two workers would each reindex. Here every
worker ticks, and a lease per task (SET NX PX, the interval) decides which one runs it; the
lease lapsing is the next due time, so restarts and extra workers change nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from feed.storage import locks

log = logging.getLogger(__name__)

LEASE_KEY = "nf:{jobs}:periodic:%s"  # held for one interval by the worker that ran the task
# How often a worker looks for due tasks: a task runs at most this late.
TICK_SECONDS = 1.0


@dataclass(frozen=True)
class Periodic:
    name: str
    every_seconds: float  # 0 or less: never
    run: Callable[[], object]


def tick(r: redis.Redis, tasks: Sequence[Periodic]) -> list[str]:
    """Run every task whose lease this process wins now; answers their names."""
    ran: list[str] = []
    for task in tasks:
        if task.every_seconds <= 0:
            continue
        key = LEASE_KEY % task.name
        token = locks.acquire(r, key, int(task.every_seconds * 1000))
        if token is None:
            continue
        try:
            task.run()
        except Exception:
            log.exception("periodic task %s failed; the next tick retries it", task.name)
            locks.release(r, key, token)  # due again at once, on any worker
            continue
        ran.append(task.name)
    return ran


class Ticker:
    """A daemon thread that ticks until stopped. ``upkeep`` runs in this worker at every tick
    (work that each worker does for itself, safe to run in several at once); ``tasks`` at most
    once per interval across all workers. While Redis is away the ticks fail, logged once."""

    def __init__(
        self,
        r: redis.Redis,
        tasks: Sequence[Periodic],
        every_seconds: float = TICK_SECONDS,
        upkeep: Sequence[Callable[[], object]] = (),
    ) -> None:
        self._redis = r
        self._tasks = tuple(tasks)
        self._upkeep = tuple(upkeep)
        self._every = every_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="periodic", daemon=True)

    def start(self) -> None:
        names = [f"{t.name} every {t.every_seconds:g}s" for t in self._tasks if t.every_seconds > 0]
        log.info("periodic tasks: %s", ", ".join(names) or "none")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                for run in self._upkeep:
                    run()
                for name in tick(self._redis, self._tasks):
                    log.info("periodic task %s enqueued", name)
            except redis.RedisError as exc:  # the next tick tries again
                if not failing:
                    log.warning("periodic ticks skipped until Redis answers: %s", exc)
                failing = True
            except Exception:  # keep ticking; the next tick retries
                log.exception("periodic upkeep failed")
            else:
                if failing:
                    log.info("periodic ticks resumed")
                failing = False
            self._stop.wait(self._every)
