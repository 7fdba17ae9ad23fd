"""The service started the way the image and the production check start it:
``gunicorn --config python:config.gunicorn wsgi:app``, with raw-socket helpers for requests
http.client will not send (trickled, oversized, malformed)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import TEST_SECRET
from tests.live import LiveService, free_port

REPO = Path(__file__).resolve().parent.parent
GUNICORN = str(Path(sys.executable).parent / "gunicorn")


@contextmanager
def gunicorn(
    workdir: Path, redis_url: str, *, workers: int = 2, threads: int = 4, **env: str
) -> Iterator[LiveService]:
    """gunicorn with config/gunicorn.py on a free port; waits for /healthz, SIGTERM on exit."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFEED_")}
    environ.update(
        NEWSFEED_REDIS_URL=redis_url,
        NEWSFEED_JWT_SECRET=TEST_SECRET,
        NEWSFEED_REINDEX_MODE="thread",  # no `newsfeed worker` next to it
        NEWSFEED_DATA_DIR=str(workdir / "var"),
        NEWSFEED_PORT=str(port),
        NEWSFEED_WORKERS=str(workers),
        NEWSFEED_THREADS=str(threads),
        NEWSFEED_LOG_LEVEL="warning",
        NEWSFEED_MODEL_POLL_SECONDS="0.2",
        NEWSFEED_DEMO_SOURCES="false",
    )
    environ.update(env)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "gunicorn.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [GUNICORN, "--config", "python:config.gunicorn", "wsgi:app"],
            env=environ,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    service = LiveService(process, port, log_path)
    try:
        _wait_healthy(service, timeout=60)
        yield service
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_healthy(service: LiveService, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        service.check_alive()
        try:
            if service.call("GET", "/healthz", timeout=5).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"/healthz did not answer in {timeout}s: {service.log_tail()}")


def raw_exchange(
    service: LiveService, data: bytes, *, timeout: float = 10.0
) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` on a new connection; the first response: status, headers, body."""
    with socket.create_connection(service.base, timeout=timeout) as sock:
        sock.sendall(data)
        return read_response(sock)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response from ``sock`` (Content-Length framed, or until the server closes)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response head: {buf!r}")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    while length is None or len(body) < int(length):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body
