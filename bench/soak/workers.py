"""The soak's `newsfeed worker`: started, killed with SIGKILL on purpose, watched for deaths."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.soak.common import WORKER_POLL_S, log
from cli.worker import worker_process


@dataclass(frozen=True)
class Death:
    """A worker process that ended without being asked to."""

    at: float  # seconds from the start of the load (when it was noticed)
    pid: int
    returncode: int | None


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (RQ forks its scheduler); Linux /proc, empty elsewhere."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def alive(pid: int) -> bool:
    """A live `newsfeed worker` process (or a fork of one): not a zombie, nor a reused pid."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False
    return state != "Z" and b"cli" in command and b"worker" in command


def kill_left(pids: set[int]) -> list[int]:
    """SIGKILL those of ``pids`` still alive; answers which were."""
    left = sorted(pid for pid in pids if alive(pid))
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


class Workers:
    """One `newsfeed worker` at a time, as deployed; a thread notices when it dies unasked."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self._env = env
        self._log_path = log_path
        # Deaths are timed on the load's clock, once the soak sets it.
        self.clock: Callable[[], float] = lambda: 0.0
        self._stack = ExitStack()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.pids: list[int] = []  # every worker started, in order
        self.deaths: list[Death] = []
        self.orphans: list[int] = []  # forked children a dead worker left running
        self._planned: set[int] = set()
        self._forked: dict[int, set[int]] = {}  # worker pid -> its children seen so far

    def start(self) -> int:
        with self._lock:
            self.process = self._stack.enter_context(worker_process(self._env, self._log_path))
            self.pids.append(self.process.pid)
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()
        return self.process.pid

    def kill(self) -> int | None:
        """SIGKILL the worker, as the OOM killer would; answers its pid (None if it had
        already died)."""
        with self._lock:
            process = self.process
            if process is None or process.poll() is not None:
                return None
            self._note_forks(process.pid)
            self._planned.add(process.pid)
            process.kill()
            process.wait()
        return process.pid

    def reap(self, pid: int) -> list[int]:
        """The forks of worker ``pid`` (RQ's scheduler) still alive: killed now, as a
        supervisor stopping the unit's cgroup would, and answered."""
        left = kill_left(self._forked.get(pid, set()))
        self.orphans += left
        return left

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._stack.close()  # SIGTERM to a live worker, as `newsfeed serve` does
        forks = set().union(*self._forked.values())
        deadline = time.monotonic() + 2.0  # a stopped worker's scheduler exits after it
        while any(alive(pid) for pid in forks) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.orphans += kill_left(forks)

    def _watch(self) -> None:
        while not self._stop.wait(WORKER_POLL_S):
            with self._lock:
                process = self.process
                if process is None or process.pid in self._planned:
                    continue
                code = process.poll()
                if code is None:
                    self._note_forks(process.pid)
                    continue
                self._planned.add(process.pid)  # counted once
                death = Death(round(self.clock(), 2), process.pid, code)
            self.deaths.append(death)
            log(f"the worker (pid {death.pid}) died at +{death.at:.1f}s, status {code}")

    def _note_forks(self, pid: int) -> None:
        self._forked.setdefault(pid, set()).update(children(pid))
