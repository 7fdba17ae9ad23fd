"""The soak's Redis outages: a restart (SIGTERM or SIGKILL) and a freeze (SIGSTOP, SIGCONT)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from bench.soak.client import probe
from bench.soak.common import (
    CLIENT_TIMEOUT_S,
    FREEZE_SECONDS,
    OUTAGE_SECONDS,
    RECOVERY_TIMEOUT_S,
    log,
)
from devtools.redis_server import RedisServer
from feed.readers.events import STREAM_KEY


@dataclass
class Outage:
    signal: str
    stopped: float = float("nan")  # seconds from the start of the load
    started: float = float("nan")  # redis-server answering again (restart) or SIGCONT (freeze)
    ready: float | None = None  # first 200 from /readyz after that
    stream_before: int = 0
    stream_after: int = 0  # entries with ids up to the last one before the stop
    last_id: str = ""
    follows: dict[str, Any] = field(default_factory=dict)

    @property
    def happened(self) -> bool:
        return self.stopped == self.stopped  # not NaN

    def window(self, end: float) -> tuple[float, float]:
        return self.stopped, self.ready if self.ready is not None else end


class Outages:
    """Stops and freezes the soak's redis-server, and measures the stream around each."""

    def __init__(
        self,
        redis_server: RedisServer,
        port: int,
        clock: Callable[[], float],
        *,
        kill: bool,
    ) -> None:
        self._server = redis_server
        self._port = port
        self._clock = clock
        self._kill = kill
        self.restart = Outage("SIGKILL" if kill else "SIGTERM")
        self.freeze = Outage("SIGSTOP")

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self._server.url, socket_timeout=10)

    def restart_redis(self) -> None:
        """Stop Redis, start it again OUTAGE_SECONDS later, wait for /readyz; the stream is
        measured before the stop and after the restart."""
        outage = self.restart
        self._mark_stream(outage)
        outage.stopped = self._clock()
        if self._kill:
            self._server.kill()
        else:
            self._server.stop()
        log(f"redis stopped ({outage.signal}); {outage.stream_before:,} events in the stream")
        self._sleep_until(outage.stopped + OUTAGE_SECONDS)
        self._server.start(timeout=30)
        outage.started = self._clock()
        log(f"redis started again (pid {self._server.pid}) on {self._server.url}")
        self._recover(outage)

    def freeze_redis(self) -> None:
        """SIGSTOP Redis for FREEZE_SECONDS (connections stay open, nothing answers: a
        partition looks the same), then SIGCONT and wait for /readyz."""
        outage = self.freeze
        pid = self._server.pid
        assert pid is not None
        self._mark_stream(outage)
        outage.stopped = self._clock()
        os.kill(pid, signal.SIGSTOP)
        try:
            log(f"redis frozen (SIGSTOP, pid {pid}) for {FREEZE_SECONDS:g}s")
            self._sleep_until(outage.stopped + FREEZE_SECONDS)
        finally:  # whatever happens, never leave it stopped
            os.kill(pid, signal.SIGCONT)
        outage.started = self._clock()
        log("redis resumed (SIGCONT)")
        self._recover(outage)

    def _recover(self, outage: Outage) -> None:
        deadline = time.monotonic() + RECOVERY_TIMEOUT_S
        while time.monotonic() < deadline:
            # A server still draining the outage's queue answers late, not never.
            reply = probe(self._port, "/readyz", timeout=CLIENT_TIMEOUT_S)
            if reply is not None and reply.status == 200:
                outage.ready = self._clock()
                break
            time.sleep(0.1)
        if outage.ready is None:
            log(f"the service did not become ready within {RECOVERY_TIMEOUT_S:g}s")
        else:
            log(f"ready again {outage.ready - outage.stopped:.2f}s after the {outage.signal}")
        outage.stream_after = self._stream_up_to_mark(outage)

    def _sleep_until(self, at: float) -> None:
        while (left := at - self._clock()) > 0:
            time.sleep(min(left, 0.5))

    def _mark_stream(self, outage: Outage) -> None:
        """The stream's newest id and its length, just before the stop."""
        with self.client() as r, r.pipeline(transaction=True) as pipe:
            # One MULTI: the newest id and the length must describe the same stream.
            pipe.xrevrange(STREAM_KEY, count=1)
            pipe.xlen(STREAM_KEY)
            last, length = pipe.execute()
            outage.last_id = last[0][0].decode() if last else "0-0"
            outage.stream_before = int(length)

    def _stream_up_to_mark(self, outage: Outage) -> int:
        """Entries now in the stream with ids up to the one marked before the stop: counted
        from the start, since the load keeps adding newer ones while this reads."""
        with self.client() as r:
            count = 0
            start = "-"
            while True:
                chunk = r.xrange(STREAM_KEY, min=start, max=outage.last_id, count=10_000)
                count += len(chunk)
                if len(chunk) < 10_000:
                    return count
                start = "(" + chunk[-1][0].decode()
