"""Exposures buffered in the serving process and written in one pipeline per flush, instead of
a round trip per page served (docs/design.md, "Experiment exposures are buffered": what a
crash can lose, and why the SRM check stays valid).

A page served appends (assignment, user, time) under a lock; a daemon thread writes what is
pending every FLUSH_SECONDS, or as soon as FLUSH_AT entries wait, through the same two steps
as the unbuffered :func:`feed.experiments.record_exposure` (:func:`feed.experiments.expose`,
then :func:`feed.experiments.add_counts` for first exposures), so the counts are the same.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Collection
from itertools import chain

import redis

from feed import experiments
from feed.experiments.assignment import Assignment

log = logging.getLogger(__name__)

# How stale the counters may be, and what a crash (SIGKILL, OOM) can lose: at most this much
# of one worker's pages, or FLUSH_AT of them, whichever is first.
FLUSH_SECONDS = 0.1
# Pending exposures that wake the flusher before its tick: bounds one pipeline (and a
# crash's loss) when a worker serves more than FLUSH_AT pages per FLUSH_SECONDS.
FLUSH_AT = 512
# Kept through a Redis outage and retried: about 100 s of a busy worker's pages at ~100 bytes
# each (10 MB). Beyond it the oldest are dropped, with a warning: memory must stay bounded.
MAX_PENDING = 100_000
# A flush that fails is logged once, then at most this often while it keeps failing.
WARN_EVERY_SECONDS = 10.0
# At exit the flusher gets this long to finish a flush in flight before the last one.
JOIN_SECONDS = 5.0
# A reader this process marked exposed is not marked again for this long: their later pages
# cost no script, only their share of the summed HINCRBYs. Marking again refreshes the
# marker's 90-day expiry, so an hour is far inside it.
REMARK_SECONDS = 3600.0
# Readers remembered as marked, per process (about 200 bytes each); the oldest are forgotten
# first, and marked again on their next page.
MAX_MARKED = 100_000

# The buffers of this process, so that a read of its results, or the events of a user whose
# first exposure may still wait here, can settle them first (see settle()).
_live: weakref.WeakSet[ExposureBuffer] = weakref.WeakSet()
_live_lock = threading.Lock()


def settle(user_ids: Collection[str] | None = None) -> None:
    """Write this process's pending exposures now: before it reads counters, or (given
    ``user_ids``) if any are of those users, before counting their events, which count only
    for users already marked exposed. Never raises (a failed flush keeps its entries)."""
    with _live_lock:
        buffers = list(_live)
    for buffer in buffers:
        if buffer.holds(user_ids):
            buffer.flush()


class RecentMarks:
    """(user, experiment) pairs this process marked exposed within ``seconds``."""

    def __init__(self, seconds: float = REMARK_SECONDS, capacity: int = MAX_MARKED) -> None:
        self._seconds = seconds
        self._capacity = capacity
        self._at: dict[tuple[str, str], float] = {}  # oldest first

    def __contains__(self, key: tuple[str, str]) -> bool:
        at = self._at.get(key)
        return at is not None and time.monotonic() - at < self._seconds

    def add(self, keys: Collection[tuple[str, str]]) -> None:
        now = time.monotonic()
        for key in keys:
            self._at.pop(key, None)  # to the end: the newest
            self._at[key] = now
        while len(self._at) > self._capacity:
            del self._at[next(iter(self._at))]


class ExposureBuffer:
    """Pending exposures of one process and the thread that writes them to ``r``."""

    def __init__(
        self,
        r: redis.Redis,
        *,
        flush_seconds: float = FLUSH_SECONDS,
        flush_at: int = FLUSH_AT,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self._redis = r
        self._flush_seconds = flush_seconds
        self._flush_at = flush_at
        self._max_pending = max_pending
        self._lock = threading.Lock()  # guards _pending, _dropped and starting the thread
        # One flush at a time: a flush (or a read that settles first) never runs ahead of
        # entries another flush has taken but not yet written.
        self._flushing = threading.Lock()
        self._pending: deque[experiments.Exposure] = deque()
        # The batch a flush has taken until its users are marked exposed: settle() for their
        # events must wait for it too, not only for what is still pending.
        self._in_flight: list[experiments.Exposure] = []
        # Users increments of a flush whose first step was written and second failed: retried
        # alone, since repeating the first step would find those users already exposed.
        self._owed: experiments.Increments = Counter()
        self._marks = RecentMarks()  # used by the one flush at a time
        self._unreported_drops = 0
        self.dropped = 0  # exposures dropped over the cap since this buffer was made
        self._failing_since: float | None = None
        self._warned_at = float("-inf")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        with _live_lock:
            _live.add(self)
        atexit.register(self.close)  # at exit: gunicorn workers (SIGTERM), the CLI, tests

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def add(self, assignment: Assignment, user_id: str, now: float) -> None:
        """A page was served: no Redis here, only an append."""
        with self._lock:
            self._pending.append(experiments.Exposure(assignment, user_id, now))
            self._drop_over_cap()
            size = len(self._pending)
            if self._thread is None and not self._closed:
                # Started on first use, so a process that never serves an experiment page
                # (the jobs worker, the CLI) runs no thread.
                self._thread = threading.Thread(
                    target=self._run, name="exposure-flusher", daemon=True
                )
                self._thread.start()
        if self._closed:  # a request finishing after close(): nobody else will write it
            self.flush()
        elif size >= self._flush_at:
            self._wake.set()

    def holds(self, user_ids: Collection[str] | None = None) -> bool:
        """Whether anything is pending or being written (of ``user_ids`` when given)."""
        with self._lock:
            if user_ids is None:
                return bool(self._pending or self._owed) or self._flushing.locked()
            return any(e.user_id in user_ids for e in chain(self._pending, self._in_flight))

    def flush(self) -> bool:
        """Write everything pending: one pipeline, and a second for first exposures. False
        when Redis failed: the entries stay for the next flush. Never raises."""
        with self._flushing:
            with self._lock:
                batch = list(self._pending)
                self._pending.clear()
                self._in_flight = batch
                dropped, self._unreported_drops = self._unreported_drops, 0
            if dropped:
                log.warning(
                    "exposure buffer over %d pending: dropped the %d oldest exposures",
                    self._max_pending,
                    dropped,
                )
            if not batch and not self._owed:
                return True
            try:
                if self._owed:
                    experiments.add_counts(self._redis, self._owed)
                    self._owed = Counter()
                marking = {
                    key
                    for e in batch
                    if (key := (e.user_id, e.assignment.experiment)) not in self._marks
                }
                owed = experiments.expose(self._redis, batch, lambda key: key not in marking)
                self._marks.add(marking)
            except Exception as exc:  # a request or the flusher must never see it
                self._requeue(batch)
                self._failed(exc)
                return False
            with self._lock:
                self._in_flight = []
            try:
                experiments.add_counts(self._redis, owed)
            except Exception as exc:
                self._owed = owed
                self._failed(exc)
                return False
            if self._failing_since is not None:
                log.info(
                    "exposures written again after %.1f s of failures",
                    time.monotonic() - self._failing_since,
                )
                self._failing_since = None
            return True

    def close(self) -> None:
        """Stop the flusher and write what is pending (worker exit, atexit, Services.close)."""
        self._closed = True
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(JOIN_SECONDS)
        if not self.flush():
            log.warning("%d exposures could not be written at exit and are lost", self.pending)
        atexit.unregister(self.close)
        with _live_lock:
            _live.discard(self)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return  # close() writes the rest
            if not self.flush():  # Redis failing: try again a tick later, not at once
                self._stop.wait(self._flush_seconds)

    def _requeue(self, batch: list[experiments.Exposure]) -> None:
        """Put a failed batch back in front of what came since, in order (the users' first
        pages stay first, so their hour is the same)."""
        with self._lock:
            self._pending.extendleft(reversed(batch))
            self._in_flight = []
            self._drop_over_cap()

    def _drop_over_cap(self) -> None:
        excess = len(self._pending) - self._max_pending
        for _ in range(excess):
            self._pending.popleft()
        if excess > 0:
            self._unreported_drops += excess
            self.dropped += excess

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning(
                "could not write exposures (%d pending, kept for the next flush): %s",
                self.pending,
                exc,
            )
