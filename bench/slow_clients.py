"""Bench section 10: other readers' cached feed while 64 connections trickle requests.

A slow client (a phone on a bad network, or an attacker) sends its request a byte at a time.
Here 64 connections do that, one byte per second each, either inside a request body (the head
is sent whole) or inside the head itself; meanwhile a few ordinary readers ask for their
cached first page at a steady pace on fresh connections. The figure is their latency.

Run on the service as shipped (config/gunicorn.py, its worker class) and, for reference, on
gunicorn's stock ``gthread`` worker with the same settings (``--worker-class gthread``).

``python -m bench.slow_clients [--quick]`` runs this section alone.
"""

from __future__ import annotations

import argparse
import http.client
import random
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.common import HOST, PAGE_LIMIT, PROFILES, follow_sets, log, percentile, store_corpus
from bench.context import Bench
from bench.load import pick_load_generator
from bench.report import Report, machine_info
from bench.servers import Gunicorn
from devtools.redis_server import RedisServer
from feed.model.reindex import reindex
from feed.readers import subscriptions
from feed.readers.tokens import issue_token

SECTION = "10. slow clients: others' cached feed while 64 connections trickle (HTTP)"
SLOW_CONNECTIONS = 64
TRICKLE_INTERVAL_S = 1.0  # one byte per connection per second
# Ordinary readers: each asks for a first page this often, on a new connection, and gives up
# after OTHER_TIMEOUT_S (a failure, counted at the timeout in the percentiles).
OTHER_CLIENTS = 4
OTHER_INTERVAL_S = 0.1
OTHER_TIMEOUT_S = 5.0
MIN_RUN_S = 10.0
P95_TARGET_MS = 1000.0
CORPUS = 2_000
USERS = 50
# The trickled body is never finished within a run; the head announces this much.
BODY_BYTES = 1_000_000
SHIPPED = "shipped worker"
STOCK = "reference: stock gthread"


class Trickler:
    """``count`` connections, each sending its request one byte per interval, reopened when
    the server closes them (as an attacker would)."""

    def __init__(self, port: int, kind: str, count: int = SLOW_CONNECTIONS) -> None:
        self.port = port
        self.kind = kind
        self.count = count
        self.reopened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Trickler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _prefix(self) -> bytes:
        if self.kind == "body":  # the head whole, then the body a byte at a time
            return (
                b"POST /v1/events HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % BODY_BYTES
            )
        return b""  # the head itself a byte at a time, never ending

    def _bytes(self) -> Iterator[bytes]:
        if self.kind == "body":
            while True:
                yield b" "
        head = b"GET /v1/categories HTTP/1.1\r\nHost: bench\r\nX-Slow: "
        for byte in head:
            yield bytes([byte])
        while True:
            yield b"a"

    def _open(self) -> tuple[socket.socket, Iterator[bytes]]:
        sock = socket.create_connection((HOST, self.port), timeout=5)
        sock.sendall(self._prefix())
        return sock, self._bytes()

    def _run(self) -> None:
        conns = [self._open() for _ in range(self.count)]
        while not self._stop.wait(TRICKLE_INTERVAL_S):
            for i, (sock, stream) in enumerate(conns):
                try:
                    sock.sendall(next(stream))
                except OSError:
                    sock.close()
                    self.reopened += 1
                    try:
                        conns[i] = self._open()
                    except OSError:
                        pass
        for sock, _ in conns:
            sock.close()


@dataclass(frozen=True)
class Others:
    """What the ordinary readers saw: latency per request (a failure counts as the timeout)."""

    latencies_ms: list[float]
    failures: int

    @property
    def p50(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p95(self) -> float:
        return percentile(self.latencies_ms, 95)


def others(port: int, targets: Sequence[tuple[str, str]], seconds: float) -> Others:
    """OTHER_CLIENTS readers, each asking for a first page every OTHER_INTERVAL_S."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            path, auth = rng.choice(targets)
            t0 = time.perf_counter()
            ok = False
            conn = http.client.HTTPConnection(HOST, port, timeout=OTHER_TIMEOUT_S)
            try:
                conn.request("GET", path, headers={"Authorization": auth})
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                pass
            finally:
                conn.close()
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed * 1000 if ok else OTHER_TIMEOUT_S * 1000)
                failures[0] += not ok
            time.sleep(max(0.0, OTHER_INTERVAL_S - elapsed))

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(OTHER_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Others(latencies, failures[0])


def slow_clients(bench: Bench) -> None:
    """Section 10 on the shipped worker and on stock gthread, each on its own gunicorn."""
    r = bench.fresh_db()
    store_corpus(r, bench.corpus(CORPUS, "slow"))
    reindex(r, live_window_days=bench.settings().live_window_days)
    settings = bench.settings()
    users = [f"patient-{n}" for n in range(USERS)]
    for user, followed in zip(users, follow_sets(USERS, random.Random(10)), strict=True):
        subscriptions.replace(r, user, followed)
    targets = [
        (f"/v1/users/{u}/feed?limit={PAGE_LIMIT}", f"Bearer {issue_token(settings, u)}")
        for u in users
    ]
    seconds = max(bench.profile.run_seconds, MIN_RUN_S)
    env = bench.service_env(bench.server.url)
    runs = ((SHIPPED, "shipped", ()), (STOCK, "gthread", ("--worker-class", "gthread")))
    for name, short, args in runs:
        with ExitStack() as stack:
            server = Gunicorn(f"slow-{short}", "wsgi:app", env, bench.tmp, args)
            stack.callback(server.stop)
            server.start()
            bench.wait_ready(server.port)
            others(server.port, targets, 1.0)  # every first page built and cached
            _scenarios(bench, name, server.port, targets, seconds)


def _scenarios(
    bench: Bench, name: str, port: int, targets: Sequence[tuple[str, str]], seconds: float
) -> None:
    runs = {"no slow clients": others(port, targets, seconds)}
    for kind, plural in (("body", "bodies"), ("head", "heads")):
        with Trickler(port, kind) as trickler:
            time.sleep(2 * TRICKLE_INTERVAL_S)  # every slow connection has sent bytes
            seen = others(port, targets, seconds)
        runs[f"{SLOW_CONNECTIONS} trickling {plural}"] = seen
        log(f"{name}, {plural} trickled: reopened by the client {trickler.reopened} times")
    shipped = name == SHIPPED
    for label, seen in runs.items():
        log(
            f"{name}, {label}: p50 {seen.p50:.1f} ms, p95 {seen.p95:.1f} ms, "
            f"{seen.failures} of {len(seen.latencies_ms)} failed"
        )
        under_load = shipped and label != "no slow clients"
        bench.report.add(SECTION, f"{name}, {label}: p50", seen.p50, "ms")
        bench.report.add(
            SECTION,
            f"{name}, {label}: p95",
            seen.p95,
            "ms",
            target=f"< {P95_TARGET_MS:.0f}" if under_load else "",
            ok=seen.p95 < P95_TARGET_MS if under_load else None,
            note=f"{len(seen.latencies_ms)} requests, {seen.failures} failed "
            f"(timeout {OTHER_TIMEOUT_S:g} s)",
        )
    bench.report.details[f"slow_clients {name}"] = {
        label: {"latencies_ms": seen.latencies_ms, "failures": seen.failures}
        for label, seen in runs.items()
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.slow_clients", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    args = parser.parse_args(argv)
    profile = PROFILES[args.quick]
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="newsfeed-slow-")))
        server = stack.enter_context(RedisServer(tmp / "redis", appendonly=False))
        started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        load_name, load = pick_load_generator("auto")
        report = Report(started, "section 10", machine_info(server, load_name))
        bench = Bench(profile, report, server, secrets.token_urlsafe(32), tmp, load)
        slow_clients(bench)
    print(report.render())


if __name__ == "__main__":
    main()
