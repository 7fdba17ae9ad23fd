"""The soak's worker kill: SIGKILL `newsfeed worker` while it fits, start a new one."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from bench.soak.common import FIT_WAIT_S, log
from bench.soak.workers import Workers
from feed.model.store import REINDEX_LOCK_KEY
from feed.model.versions import CORPUS_VERSION_KEY


@dataclass
class WorkerKill:
    at: float = float("nan")  # seconds from the start of the load
    fit_running: bool = False  # the reindex lock was held when the worker was killed
    waited: float = 0.0  # from the articles' acknowledgement to the kill
    lock_ttl_ms: int = -2  # the lock's PTTL right after the kill (-2: no lock)
    corpus: int = 0  # the corpus version at the kill: the next model must cover it
    killed: int | None = None  # None: the worker was already dead
    started: int = 0  # the new worker's pid
    orphans: list[int] = field(default_factory=list)

    @property
    def happened(self) -> bool:
        return self.at == self.at  # not NaN


def kill_during_fit(
    workers: Workers, r: redis.Redis, publish: Callable[[], int], clock: Callable[[], float]
) -> WorkerKill:
    """Publish a batch (its write enqueues a fit), wait for a fit to hold the reindex lock,
    SIGKILL the worker and start another."""
    kill = WorkerKill()
    publish()
    t0 = time.monotonic()
    while time.monotonic() - t0 < FIT_WAIT_S:
        if r.exists(REINDEX_LOCK_KEY):
            kill.fit_running = True
            break
        time.sleep(0.01)
    kill.waited = time.monotonic() - t0
    kill.at = clock()
    kill.killed = workers.kill()
    kill.started = workers.start()
    kill.lock_ttl_ms = int(r.pttl(REINDEX_LOCK_KEY))
    kill.corpus = int(r.get(CORPUS_VERSION_KEY) or 0)
    if kill.killed is not None:
        time.sleep(1.0)  # a fork that noticed its parent's death has exited by now
        kill.orphans = workers.reap(kill.killed)
    log(
        f"worker {kill.killed} killed (SIGKILL) "
        + ("during a fit" if kill.fit_running else f"with no fit seen in {FIT_WAIT_S:g}s")
        + f"; corpus version {kill.corpus}; new worker {kill.started}"
        + (f"; forks left running: {kill.orphans}" if kill.orphans else "")
    )
    return kill
