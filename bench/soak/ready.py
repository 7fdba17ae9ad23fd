"""/readyz sampled through the soak: readiness, and how far the model lags the corpus."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from bench.soak.client import probe
from bench.soak.common import CLIENT_TIMEOUT_S, READY_SAMPLE_S

# Probes in flight at once: a loaded server answers late, and sampling must not wait for it.
MAX_PROBES = 30


class ReadySample(NamedTuple):
    sent: float  # seconds from the start of the load
    at: float  # when the answer came (or the probe gave up)
    status: int  # 0: no answer
    corpus: int | None  # corpus_version, when the body says
    model: int | None  # model_corpus_version

    @property
    def moment(self) -> float:
        """When the answer describes: /readyz read the versions somewhere between the send
        and the answer, which a loaded server spreads apart; halfway is the estimate."""
        return (self.sent + self.at) / 2

    @property
    def lag(self) -> int | None:
        if self.corpus is None or self.model is None:
            return None
        return max(0, self.corpus - self.model)


@dataclass(frozen=True)
class Behind:
    """The longest stretch the model stayed behind the corpus."""

    start: float
    end: float  # the first sample caught up again (or the last sample)
    caught_up: bool

    @property
    def seconds(self) -> float:
        return self.end - self.start


class ReadyWatch:
    """Sends a /readyz probe every READY_SAMPLE_S seconds from start() to stop(), each on its
    own connection and thread, so that slow answers do not thin out the samples."""

    def __init__(self, port: int, clock: Callable[[], float]) -> None:
        self._port = port
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._slots = threading.BoundedSemaphore(MAX_PROBES)
        self._lock = threading.Lock()
        self._samples: list[ReadySample] = []

    @property
    def samples(self) -> list[ReadySample]:
        """Every answered (or timed-out) probe so far, by send time."""
        with self._lock:
            return sorted(self._samples)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(CLIENT_TIMEOUT_S + 5)

    def _run(self) -> None:
        probes: list[threading.Thread] = []
        while not self._stop.wait(READY_SAMPLE_S):
            if self._slots.acquire(blocking=False):  # else: MAX_PROBES unanswered, skip one
                probes = [t for t in probes if t.is_alive()]
                thread = threading.Thread(target=self._probe, daemon=True)
                thread.start()
                probes.append(thread)
        for thread in probes:
            thread.join(CLIENT_TIMEOUT_S + 1)

    def _probe(self) -> None:
        try:
            sample = self.sample()
            with self._lock:
                self._samples.append(sample)
        finally:
            self._slots.release()

    def sample(self) -> ReadySample:
        sent = self._clock()
        reply = probe(self._port, "/readyz", timeout=CLIENT_TIMEOUT_S)
        if reply is None:
            return ReadySample(sent, self._clock(), 0, None, None)
        corpus = model = None
        try:
            body = json.loads(reply.body)
            # A /readyz that degrades on a stale model may still say by how much.
            corpus, model = int(body["corpus_version"]), int(body["model_corpus_version"])
        except (ValueError, KeyError, TypeError):
            pass
        return ReadySample(sent, self._clock(), reply.status, corpus, model)

    # figures

    def max_lag(self) -> int | None:
        lags = [s.lag for s in self.samples if s.lag is not None]
        return max(lags) if lags else None

    def longest_behind(self) -> Behind | None:
        """Samples that do not say (no answer, a 503 without versions) neither start nor end
        a stretch: a model that never catches up through an outage stays behind through it."""
        longest: Behind | None = None
        since: float | None = None
        last = 0.0
        for s in sorted(self.samples, key=lambda s: s.moment):
            if s.lag is None:
                continue
            last = s.moment
            if s.lag > 0 and since is None:
                since = s.moment
            elif s.lag == 0 and since is not None:
                longest = _longer(longest, Behind(since, s.moment, True))
                since = None
        if since is not None:
            longest = _longer(longest, Behind(since, last, False))
        return longest

    def wait_covered(self, since: float, until: float) -> None:
        """Until a model covers the corpus version seen after ``since``, or ``until`` (both
        on the load's clock): the last articles' time to the model is measured too."""
        while self._clock() < until:
            corpus = self.corpus_after(since)
            if corpus is not None and self.covered_at(corpus, since) is not None:
                return
            time.sleep(READY_SAMPLE_S)

    def covered_at(self, corpus: int, after: float) -> float | None:
        """When an answer first said the model covered corpus version ``corpus``, at or after
        ``after``: its arrival, an upper bound (the target is a bound too)."""
        for s in sorted(self.samples, key=lambda s: s.at):
            if s.at >= after and s.model is not None and s.model >= corpus:
                return s.at
        return None

    def corpus_after(self, at: float) -> int | None:
        """The corpus version the first sample answered after ``at`` (an upper bound of the
        version a write acknowledged at ``at`` made)."""
        for s in self.samples:
            if s.sent >= at and s.corpus is not None:
                return s.corpus
        return None


def _longer(a: Behind | None, b: Behind) -> Behind:
    return b if a is None or b.seconds > a.seconds else a
