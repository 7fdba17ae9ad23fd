"""gunicorn workers' resident memory, sampled during the soak."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from bench.servers import Gunicorn
from bench.soak.common import MEMORY_SAMPLE_S


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def worker_rss(server: Gunicorn) -> dict[int, int]:
    found = {}
    for pid in sorted(server.worker_pids()):
        kb = rss_kb(pid)
        if kb is not None:
            found[pid] = kb
    return found


class MemoryWatch:
    """Samples every worker's RSS now and then, for the JSON timeline."""

    def __init__(self, server: Gunicorn, clock: Callable[[], float]) -> None:
        self._server = server
        self._clock = clock
        self._stop = threading.Event()
        self.timeline: list[tuple[float, dict[int, int]]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while True:
            self.timeline.append((round(self._clock(), 1), worker_rss(self._server)))
            if self._stop.wait(MEMORY_SAMPLE_S):
                return
