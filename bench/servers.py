"""gunicorn servers the bench starts and stops itself, and a watch on their workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from bench.common import REPO, STARTUP_TIMEOUT_S, free_port, http_get, log
from config import ENV_PREFIX


class Gunicorn:
    """One gunicorn master (and its workers) serving ``app`` with config.gunicorn."""

    def __init__(
        self, name: str, app: str, env: dict[str, str], log_dir: Path, args: Sequence[str] = ()
    ) -> None:
        self.name = name
        self.app = app
        self.env = env
        # Command-line options after the config file override it (a reference run's worker).
        self.args = tuple(args)
        self.log_path = log_dir / f"gunicorn-{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> Gunicorn:
        binary = Path(sys.executable).with_name("gunicorn")
        command = ([str(binary)] if binary.exists() else [sys.executable, "-m", "gunicorn"]) + [
            "--config",
            "python:config.gunicorn",
            *self.args,
            self.app,
        ]
        for _attempt in range(3):
            self.port = free_port()
            env = {**self.env, ENV_PREFIX + "PORT": str(self.port)}
            with open(self.log_path, "ab") as errors:
                # stdout carries the access log: discarded, the same for both servers.
                self.process = subprocess.Popen(
                    command,
                    cwd=REPO,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                    start_new_session=True,
                )
            if self._wait_healthy():
                log(f"gunicorn {self.name} up on port {self.port} (pid {self.process.pid})")
                return self
            self.stop()
        raise RuntimeError(
            f"gunicorn {self.name} did not start; see {self.log_path}:\n" + self.tail()
        )

    def _wait_healthy(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                status, _, _ = http_get(self.port, "/healthz")
                if status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def worker_pids(self) -> set[int]:
        """Pids of this master's current workers (Linux /proc; empty elsewhere)."""
        if self.process is None:
            return set()
        found: set[int] = set()
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            found = {int(p) for p in children.read_text().split()}
        except OSError:
            pass
        return found

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)  # graceful: the master stops its workers
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: only what we started
            process.wait()


class WorkerWatch:
    """Polls a gunicorn master's worker pids during a run, to count recycled workers and
    the CPU time the workers spent (user + system) while it ran.

    A recycled worker's CPU is counted up to its last poll (every 0.2 s), so a run that
    recycles workers slightly undercounts; the bench reports recycling alongside.
    """

    def __init__(self, server: Gunicorn) -> None:
        self._server = server
        self._stop = threading.Event()
        self.initial = server.worker_pids()
        self.seen = set(self.initial)
        # pid -> CPU seconds at its first sighting in this run, and at its latest poll.
        self._cpu_start: dict[int, float] = {}
        self._cpu_last: dict[int, float] = {}
        self._sample(self.initial)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WorkerWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()

    @property
    def recycled(self) -> int:
        return len(self.seen - self.initial)

    @property
    def cpu_seconds(self) -> float:
        """The workers' CPU time over the run (new workers from their first sighting)."""
        return sum(last - self._cpu_start[pid] for pid, last in self._cpu_last.items())

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self._poll()

    def _poll(self) -> None:
        pids = self._server.worker_pids()
        self.seen |= pids
        self._sample(pids)

    def _sample(self, pids: set[int]) -> None:
        for pid in pids:
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue  # exited between the listing and the read
            self._cpu_start.setdefault(pid, times.user + times.system)
            self._cpu_last[pid] = times.user + times.system
