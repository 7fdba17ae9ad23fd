"""The real service under gunicorn (`newsfeed serve`) for end-to-end tests, and a tiny client.

Used by the fault, persistence and concurrency tests: real processes, no mocks.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from config import Settings
from feed.readers.tokens import issue_token
from tests.conftest import TEST_SECRET

NEWSFEED = str(Path(sys.executable).parent / "newsfeed")
GUNICORN = str(Path(sys.executable).parent / "gunicorn")
REPO = Path(__file__).resolve().parent.parent
SETTINGS = Settings(jwt_secret=TEST_SECRET)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bearer(user_id: str, *, admin: bool = False) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SETTINGS, user_id, admin=admin)}"}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw text when it is not JSON
    elapsed: float
    started: float = 0.0  # time.monotonic() when the request was sent
    done: float = 0.0  # time.monotonic() when the response was read

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def call(
    base: tuple[str, int],
    method: str,
    path: str,
    *,
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    timeout: float = 30.0,
) -> Reply:
    """One HTTP request on a fresh connection; raises OSError on a transport failure."""
    payload = None if json_body is None else json.dumps(json_body).encode()
    sent = dict(headers or {})
    if payload is not None:
        sent["Content-Type"] = "application/json"
    started = time.monotonic()
    conn = http.client.HTTPConnection(*base, timeout=timeout)
    try:
        conn.request(method, path, body=payload, headers=sent)
        response = conn.getresponse()
        raw = response.read()
        reply_headers = {k.lower(): v for k, v in response.getheaders()}
        status = response.status
    finally:
        conn.close()
    done = time.monotonic()
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode("utf-8", "replace")
    return Reply(status, reply_headers, body, done - started, started, done)


@dataclass
class LiveService:
    """A running `newsfeed serve` (gunicorn master and workers)."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    admin: dict[str, str] = field(default_factory=lambda: bearer("editor", admin=True))

    @property
    def base(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def master_pid(self) -> int:
        return self.process.pid

    def worker_pids(self) -> set[int]:
        return {child.pid for child in psutil.Process(self.process.pid).children()}

    def call(self, method: str, path: str, **kwargs: Any) -> Reply:
        return call(self.base, method, path, **kwargs)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        """Until /readyz is 200 with a model fitted on the current corpus version."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                reply = self.call("GET", "/readyz", timeout=10)
            except OSError as exc:
                last = exc
            else:
                last = reply.body
                if (
                    reply.status == 200
                    and reply.body["model_corpus_version"] >= reply.body["corpus_version"]
                ):
                    return dict(reply.body)
            time.sleep(0.05)
        raise AssertionError(f"service not ready in {timeout}s: {last}\n{self.log_tail()}")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"newsfeed serve exited: {self.log_tail()}")

    def ingest(self, articles: list[dict[str, Any]]) -> None:
        for start in range(0, len(articles), 1000):
            reply = self.call(
                "POST",
                "/v1/articles",
                headers=self.admin,
                json_body={"articles": articles[start : start + 1000]},
            )
            assert reply.status == 200 and not reply.body["rejected"], reply.body
        self.wait_ready()


@contextmanager
def serve(
    workdir: Path,
    redis_url: str | None,
    *,
    args: Sequence[str] = (),
    workers: int = 2,
    threads: int = 4,
    **env: str,
) -> Iterator[LiveService]:
    """`newsfeed serve [args]`; waits for /healthz, stops it (SIGTERM) on exit.

    Without ``redis_url`` it runs on the embedded default: its own Redis and development
    secret under ``workdir/var``, as `make run` does.
    """
    with _running([NEWSFEED, "serve", *args], workdir, redis_url, workers, threads, env) as live:
        yield live


@contextmanager
def gunicorn(
    workdir: Path, redis_url: str, *, workers: int = 2, threads: int = 4, **env: str
) -> Iterator[LiveService]:
    """The service as the production check starts it, with no `newsfeed serve` around it:
    ``gunicorn --config python:config.gunicorn wsgi:app``."""
    command = [GUNICORN, "--config", "python:config.gunicorn", "wsgi:app"]
    with _running(command, workdir, redis_url, workers, threads, env, cwd=REPO) as live:
        yield live


@contextmanager
def _running(
    command: Sequence[str],
    workdir: Path,
    redis_url: str | None,
    workers: int,
    threads: int,
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
) -> Iterator[LiveService]:
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFEED_")}
    if redis_url is not None:
        # Thread mode: the service fits by itself, with no `newsfeed worker` next to it (the
        # embedded default starts one); a test can pass NEWSFEED_REINDEX_MODE=queue.
        environ.update(
            NEWSFEED_REDIS_URL=redis_url,
            NEWSFEED_JWT_SECRET=TEST_SECRET,
            NEWSFEED_REINDEX_MODE="thread",
        )
    environ.update(
        NEWSFEED_DATA_DIR=str(workdir / "var"),
        NEWSFEED_PORT=str(port),
        NEWSFEED_WORKERS=str(workers),
        NEWSFEED_THREADS=str(threads),
        NEWSFEED_LOG_LEVEL="warning",
        NEWSFEED_MODEL_POLL_SECONDS="0.2",
        NEWSFEED_DEMO_SOURCES="false",  # tests never reach the network
    )
    environ.update(env)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "gunicorn.log"
    # The access log is written for every request: a file, never an undrained pipe.
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            list(command),
            env=environ,
            cwd=cwd or workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    service = LiveService(process, port, log_path)
    try:
        _wait_healthy(service, timeout=60)
        yield service
    finally:
        _stop(process)


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


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
