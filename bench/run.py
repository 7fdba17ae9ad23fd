"""Measure the service on this machine and print a report: ``python -m bench [--quick]``.

Everything runs against processes this script starts and stops itself: a private
redis-server (no persistence) in a temporary directory and gunicorn servers on free ports,
with the service's own gunicorn config. Four things are measured:

1. cached-feed throughput and latency under 32 connections, next to a "floor" (a bare Flask
   endpoint answering one Redis GET of a same-size body, ``bench/floor.py``) on the
   same gunicorn settings, alternating floor and feed runs;
2. cold-feed build time in-process through the real FeedService, and the bare ranker;
3. ingest rate through ``POST /v1/articles`` and through ``feed.articles.upsert``;
4. reindex time, split into read / fit / store;
8. a reindex and the precompute after it, by `newsfeed worker` processes (``bench/jobs.py``);
9. breaking news: publish-to-visible with no refit, and a cold build with a reading history
   (``bench/breaking.py``).

The report is printed as a table and written as JSON to ``var/bench.json``. The load
generator is ``wrk`` when it is on PATH, else a Python one (32 threads in a separate process).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import redis

from api import create_app
from api.extensions import EXTENSION, Services
from api.tokens import issue_token
from bench.breaking import breaking_news
from bench.cluster import cluster_vs_single
from bench.jobs import reindex_and_precompute
from config import ENV_PREFIX, Settings
from feed import articles, categories, subscriptions
from feed.articles import Article
from feed.assignment import Experiment, Variant, assign, dump_running, parse_running
from feed.demo import DEMO_CATEGORIES, generate_articles
from feed.redis_server import RedisServer
from feed.reindex import ReindexResult, reindex
from recommender.ranker import RankRequest
from recommender.tfidf import TfidfRanker

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO / "var" / "bench.json"
HOST = "127.0.0.1"
# Where bench/floor.py reads its body (not imported: it needs NEWSFEED_REDIS_URL set).
FLOOR_KEY = "bench:floor:body"

# Load shape: the same gunicorn settings for the feed and the floor.
WORKERS = 2
THREADS = 4
CONNECTIONS = 32
PAGE_LIMIT = 20
PER_IP_LIMIT = "10000000/minute"
UNLIMITED = "feed, no rate limits"
RUNS_PER_APP = 2  # floor, feed, floor, feed: medians over the runs

INGEST_BATCH = 1000
EVENT_BATCH = 100
EVENT_CLIENTS = 8
EVENTS_TARGET = 5000.0
FEED_TARGET_RATIO = 0.80
COLD_P50_TARGET_MS = 20.0
REINDEX_100K_TARGET_S = 60.0

STARTUP_TIMEOUT_S = 60.0
RESULT_MARK = "BENCH_RESULT"


@dataclass(frozen=True)
class Profile:
    quick: bool
    run_seconds: float
    warmup_seconds: float
    feed_articles: int
    users: int
    cold_users: int
    cold_sizes: tuple[int, ...]


PROFILES = {
    False: Profile(False, 15.0, 3.0, 10_000, 300, 50, (10_000, 100_000)),
    True: Profile(True, 5.0, 1.0, 10_000, 200, 50, (10_000,)),
}


# -- the report -------------------------------------------------------------------------------


@dataclass
class Figure:
    section: str
    label: str
    value: float | None
    unit: str
    target: str = ""
    ok: bool | None = None  # None: no target
    note: str = ""

    @property
    def status(self) -> str:
        return "" if self.ok is None else ("PASS" if self.ok else "MISS")


@dataclass
class Report:
    started: str
    mode: str
    machine: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add_load(self, section: str, label: str, results: Sequence[LoadResult]) -> None:
        """Throughput, p50 and p99 of one server's runs (medians), with each run's throughput."""
        self.add(
            section,
            f"{label} throughput",
            median([r.rps for r in results]),
            "req/s",
            note="runs: " + ", ".join(f"{r.rps:,.0f}" for r in results),
        )
        self.add(section, f"{label} p50", median([r.p50_ms for r in results]), "ms")
        self.add(section, f"{label} p99", median([r.p99_ms for r in results]), "ms")

    def add(
        self,
        section: str,
        label: str,
        value: float | None,
        unit: str,
        *,
        target: str = "",
        ok: bool | None = None,
        note: str = "",
    ) -> None:
        self.figures.append(Figure(section, label, value, unit, target, ok, note))

    def sort(self) -> None:
        """Sections in numbered order; figures keep the order they were measured in."""
        self.figures.sort(key=lambda f: f.section)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for figure, row in zip(self.figures, data["figures"], strict=True):
            row["status"] = figure.status
        return data

    def render(self) -> str:
        lines = [
            f"newsfeed bench, {self.mode} run, started {self.started}",
            "machine: "
            + ", ".join(f"{k} {v}" for k, v in self.machine.items() if not isinstance(v, dict)),
        ]
        rows = [
            (f.label, _format_value(f.value, f.unit), f.target, f.status, f.note)
            for f in self.figures
        ]
        widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(_HEADERS)]
        section = None
        for figure, row in zip(self.figures, rows, strict=True):
            if figure.section != section:
                section = figure.section
                lines += ["", section, "  " + _row(_HEADERS, widths).rstrip()]
                lines.append("  " + "  ".join("-" * w for w in widths[:-1]))
            lines.append("  " + _row(row, widths).rstrip())
        if self.notes:
            lines += ["", "notes:"] + [f"  - {n}" for n in self.notes]
        return "\n".join(lines)


_HEADERS = ("figure", "value", "target", "status", "note")


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    label, value, target, status, note = cells
    return "  ".join(
        [
            label.ljust(widths[0]),
            value.rjust(widths[1]),
            target.ljust(widths[2]),
            status.ljust(widths[3]),
            note,
        ]
    )


def _format_value(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if isinstance(value, int) or abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"  # ratios near a threshold: 0.798 must not print as 0.80
    return f"{text} {unit}".rstrip()


# -- small helpers ----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100.0
    low = math.floor(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def http_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def http_post(
    conn: http.client.HTTPConnection, path: str, body: bytes, token: str, expect: Sequence[int]
) -> bytes:
    """POST a JSON body on an open connection; the response body, unless the status is not
    one of ``expect``."""
    conn.request(
        "POST",
        path,
        body=body,
        headers={"Authorization": token, "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    payload = response.read()
    if response.status not in expect:
        raise RuntimeError(f"POST {path}: {response.status} {payload[:300]!r}")
    return payload


def to_article(wire: dict[str, Any]) -> Article:
    return Article.from_card(wire, wire.get("body", ""))


def load_catalog(r: redis.Redis) -> None:
    for slug, name in DEMO_CATEGORIES.items():
        categories.put(r, slug, name)


def follow_sets(count: int, rng: random.Random) -> list[list[str]]:
    slugs = sorted(DEMO_CATEGORIES)
    return [sorted(rng.sample(slugs, rng.choice((2, 3)))) for _ in range(count)]


# -- processes --------------------------------------------------------------------------------


class Gunicorn:
    """One gunicorn master (and its workers) serving ``app`` with config.gunicorn."""

    def __init__(self, name: str, app: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.app = app
        self.env = env
        self.log_path = log_dir / f"gunicorn-{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> Gunicorn:
        binary = Path(sys.executable).with_name("gunicorn")
        command = ([str(binary)] if binary.exists() else [sys.executable, "-m", "gunicorn"]) + [
            "--config",
            "python:config.gunicorn",
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
    """Polls a gunicorn master's worker pids during a run, to count recycled workers."""

    def __init__(self, server: Gunicorn) -> None:
        self._server = server
        self._stop = threading.Event()
        self.initial = server.worker_pids()
        self.seen = set(self.initial)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WorkerWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.seen |= self._server.worker_pids()

    @property
    def recycled(self) -> int:
        return len(self.seen - self.initial)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.seen |= self._server.worker_pids()


# -- load generation --------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    generator: str

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else math.nan


_WRK_SCRIPT = """
local entries = %(entries)s
local prepared = {}
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end

function init(args)
  math.randomseed(seed or 1)
  for i, e in ipairs(entries) do
    prepared[i] = wrk.format("GET", e[1], {["Authorization"] = e[2]})
  end
end

function request()
  return prepared[math.random(#prepared)]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("%(mark)s %%d %%d %%.1f %%.1f %%d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_wrk(
    port: int, targets: Sequence[tuple[str, str]], seconds: float, script_dir: Path
) -> LoadResult:
    entries = "{\n" + ",\n".join(f"  {{{_lua_string(p)}, {_lua_string(a)}}}" for p, a in targets)
    script = script_dir / f"wrk-{port}.lua"
    script.write_text(_WRK_SCRIPT % {"entries": entries + "\n}", "mark": RESULT_MARK})
    command = [
        "wrk",
        f"-t{min(2, os.cpu_count() or 2)}",
        f"-c{CONNECTIONS}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://{HOST}:{port}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            _, requests, duration_us, p50_us, p99_us, errors = line.split()
            return LoadResult(
                int(requests),
                int(duration_us) / 1e6,
                float(p50_us) / 1000,
                float(p99_us) / 1000,
                int(errors),
                "wrk",
            )
    raise RuntimeError(f"wrk gave no result (exit {done.returncode}):\n{done.stdout}{done.stderr}")


def run_python_load(
    port: int, targets: Sequence[tuple[str, str]], seconds: float, script_dir: Path
) -> LoadResult:
    """32 keep-alive http.client threads, in a child process so this one stays out of it."""
    spec = script_dir / f"load-{port}.json"
    spec.write_text(json.dumps({"port": port, "targets": list(targets), "seconds": seconds}))
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--loadgen-worker", str(spec)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            data = json.loads(line[len(RESULT_MARK) :])
            return LoadResult(**data)
    raise RuntimeError(f"load generator failed (exit {done.returncode}):\n{done.stderr[-3000:]}")


def loadgen_worker(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    port: int = spec["port"]
    targets: list[list[str]] = spec["targets"]
    seconds: float = spec["seconds"]
    latencies: list[list[float]] = [[] for _ in range(CONNECTIONS)]
    errors = [0] * CONNECTIONS
    start = threading.Barrier(CONNECTIONS + 1)
    deadline = [0.0]

    def hammer(slot: int) -> None:
        rng = random.Random(slot)
        mine = latencies[slot]
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        start.wait()
        clock = time.perf_counter
        while clock() < deadline[0]:
            path, auth = targets[rng.randrange(len(targets))]
            t0 = clock()
            try:
                conn.request("GET", path, headers={"Authorization": auth})
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    errors[slot] += 1
                mine.append(clock() - t0)
            except (OSError, http.client.HTTPException):
                errors[slot] += 1
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=10)
        conn.close()

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    merged = [x for chunk in latencies for x in chunk]
    result = LoadResult(
        len(merged),
        elapsed,
        percentile(merged, 50) * 1000,
        percentile(merged, 99) * 1000,
        sum(errors),
        f"python ({CONNECTIONS} http.client threads, 1 process)",
    )
    print(RESULT_MARK + json.dumps(asdict(result)), flush=True)


LoadFn = Callable[[int, Sequence[tuple[str, str]], float, Path], LoadResult]


def pick_load_generator(choice: str) -> tuple[str, LoadFn]:
    if choice in ("auto", "wrk") and shutil.which("wrk"):
        version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
        found = re.search(r"wrk (\S+)", version)
        return f"wrk {found.group(1) if found else ''}".strip(), run_wrk
    if choice == "wrk":
        raise SystemExit("--loadgen wrk: wrk is not on PATH (apt-get install wrk)")
    return f"python ({CONNECTIONS} http.client threads in a child process)", run_python_load


# -- the measurements -------------------------------------------------------------------------


@dataclass
class Bench:
    profile: Profile
    report: Report
    server: RedisServer
    secret: str
    tmp: Path
    load: LoadFn
    reindex_samples: dict[int, list[ReindexResult]] = field(default_factory=dict)

    @property
    def r(self) -> redis.Redis:
        return redis.Redis.from_url(self.server.url)

    def settings(self) -> Settings:
        return Settings(redis_url=self.server.url, jwt_secret=self.secret)

    def fresh_db(self) -> redis.Redis:
        client = self.r
        client.flushall()
        load_catalog(client)
        return client

    def corpus(self, count: int, prefix: str) -> list[dict[str, Any]]:
        t0 = time.perf_counter()
        wire = generate_articles(count, id_prefix=prefix)
        log(f"generated {count:,} demo articles in {time.perf_counter() - t0:.1f}s")
        return wire

    def time_reindex(self, r: redis.Redis, size: int) -> ReindexResult:
        log(f"reindexing {size:,} articles")
        result = reindex(r, live_window_days=self.settings().live_window_days)
        self.reindex_samples.setdefault(size, []).append(result)
        log(
            f"reindex {size:,}: read {result.read_seconds:.1f}s, fit {result.fit_seconds:.1f}s, "
            f"store {result.store_seconds:.1f}s"
        )
        return result

    # 3. ingest in-process, 2. cold feeds, 4. reindex ----------------------------------------

    def in_process(self, size: int) -> None:
        r = self.fresh_db()
        wire = self.corpus(size, f"bench{size}")
        batch_rates: list[float] = []
        t_all = time.perf_counter()
        for start in range(0, len(wire), INGEST_BATCH):
            chunk = [(i, to_article(a)) for i, a in enumerate(wire[start : start + INGEST_BATCH])]
            t0 = time.perf_counter()
            result = articles.upsert(r, chunk)
            batch_rates.append(len(chunk) / (time.perf_counter() - t0))
            if len(result.created) != len(chunk):
                raise RuntimeError(f"upsert stored {len(result.created)} of {len(chunk)}")
        log(f"in-process ingest of {size:,} in {time.perf_counter() - t_all:.1f}s")
        del wire
        self.report.add(
            "3. ingest",
            f"in-process upsert, {size // 1000}k corpus",
            median(batch_rates),
            "art/s",
            note=f"median of {len(batch_rates)} batches of {INGEST_BATCH}",
        )
        self.report.details[f"ingest_inprocess_{size}_batch_rates"] = batch_rates
        self.time_reindex(r, size)
        self.cold_feeds(size)

    def cold_feeds(self, size: int) -> None:
        overrides = {
            "redis_url": self.server.url,
            "jwt_secret": self.secret,
            "auto_reindex": False,
            "log_level": "warning",
        }
        app = create_app(overrides)
        svc: Services = app.extensions[EXTENSION]
        try:
            self._cold_feeds(svc, size)
        finally:
            svc.keeper.stop()
            svc.redis.close()

    def _cold_feeds(self, svc: Services, size: int) -> None:
        rng = random.Random(size)
        users = self.profile.cold_users
        follows = follow_sets(users + 1, rng)
        for n, followed in enumerate(follows):
            subscriptions.replace(svc.redis, f"cold{size}-{n}", followed)
        # The first miss in a process loads the model from Redis: timed apart.
        t0 = time.perf_counter()
        first = svc.feed.page(f"cold{size}-{users}", PAGE_LIMIT)
        first_ms = (time.perf_counter() - t0) * 1000
        if first.cache_hit or len(json.loads(first.body)["items"]) != PAGE_LIMIT:
            raise RuntimeError("the first cold page was not a full miss")
        cold: list[float] = []
        for n in range(users):
            t0 = time.perf_counter()
            page = svc.feed.page(f"cold{size}-{n}", PAGE_LIMIT)
            cold.append((time.perf_counter() - t0) * 1000)
            if page.cache_hit or len(json.loads(page.body)["items"]) != PAGE_LIMIT:
                raise RuntimeError(f"cold page for user {n}: hit={page.cache_hit}")
        warm: list[float] = []
        for n in range(users):
            t0 = time.perf_counter()
            page = svc.feed.page(f"cold{size}-{n}", PAGE_LIMIT)
            warm.append((time.perf_counter() - t0) * 1000)
            if not page.cache_hit:
                raise RuntimeError(f"second page for user {n} missed the cache")
        loaded = svc.keeper.loaded
        assert loaded is not None
        ranker = TfidfRanker(half_life_hours=svc.settings.freshness_half_life_hours)
        ranked: list[float] = []
        for followed in follows[:users]:
            request = RankRequest(tuple(followed), time.time(), svc.settings.feed_size)
            t0 = time.perf_counter()
            ranker.rank(loaded.model, request)
            ranked.append((time.perf_counter() - t0) * 1000)

        label = f"{size // 1000}k corpus"
        section = "2. cold feed build (in-process FeedService.page, limit 20)"
        p50 = percentile(cold, 50)
        at_target = size >= 100_000
        self.report.add(
            section,
            f"{label}: cold page p50",
            p50,
            "ms",
            target=f"< {COLD_P50_TARGET_MS:g} ms" if at_target else "",
            ok=(p50 < COLD_P50_TARGET_MS) if at_target else None,
            note=f"{users} new users, 2-3 categories each",
        )
        self.report.add(section, f"{label}: cold page p99", percentile(cold, 99), "ms")
        self.report.add(section, f"{label}: bare ranker p50", percentile(ranked, 50), "ms")
        self.report.add(section, f"{label}: bare ranker p99", percentile(ranked, 99), "ms")
        self.report.add(
            section,
            f"{label}: cold page minus ranker",
            p50 - percentile(ranked, 50),
            "ms",
            note="p50 difference: Redis round trips, reasons, cache store, render",
        )
        self.report.add(
            section, f"{label}: cached page p50", percentile(warm, 50), "ms", note="same users"
        )
        self.report.add(
            section,
            f"{label}: first miss in a process",
            first_ms,
            "ms",
            note="includes loading the model from Redis",
        )
        self.report.details[f"cold_{size}"] = {
            "cold_ms": cold,
            "warm_ms": warm,
            "ranker_ms": ranked,
            "first_ms": first_ms,
        }

    # 1. cached feed vs floor, 3. HTTP ingest ------------------------------------------------

    def service_env(self, redis_url: str) -> dict[str, str]:
        """The environment of a benchmarked gunicorn: shipped config, this run's Redis."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        env.update(
            {
                ENV_PREFIX + "REDIS_URL": redis_url,
                ENV_PREFIX + "JWT_SECRET": self.secret,
                ENV_PREFIX + "HOST": HOST,
                ENV_PREFIX + "WORKERS": str(WORKERS),
                ENV_PREFIX + "THREADS": str(THREADS),
                ENV_PREFIX + "LOG_LEVEL": "warning",
                # Background refits would compete with the ingest being measured; the reindex
                # is run (and timed) explicitly below and the workers load its model.
                ENV_PREFIX + "AUTO_REINDEX": "false",
                ENV_PREFIX + "DATA_DIR": str(self.tmp / "data"),
                # Every request comes from this one load generator's IP, far above a real
                # client's budget; the per-user limit stays as shipped, and both are counted.
                ENV_PREFIX + "RATE_LIMIT_PER_IP": PER_IP_LIMIT,
            }
        )
        return env

    def http(self) -> None:
        r = self.fresh_db()
        env = self.service_env(self.server.url)
        feed = Gunicorn("feed", "wsgi:app", env, self.tmp)
        floor = Gunicorn("floor", "bench.floor:app", env, self.tmp)
        # A reference: the same service without rate limits, to show what limiting costs.
        unlimited = Gunicorn(
            UNLIMITED, "wsgi:app", {**env, ENV_PREFIX + "RATE_LIMIT_ENABLED": "false"}, self.tmp
        )
        # Stopped when this phase ends, or on any error on the way.
        with ExitStack() as servers:
            for server in (feed, floor, unlimited):
                servers.callback(server.stop)
                server.start()
            self._http(r, feed, floor, unlimited)

    def _http(self, r: redis.Redis, feed: Gunicorn, floor: Gunicorn, unlimited: Gunicorn) -> None:
        profile = self.profile
        settings = self.settings()
        self.http_ingest(feed.port, settings, self.corpus(profile.feed_articles, "feed"))
        self.time_reindex(r, profile.feed_articles)
        self.wait_ready(feed.port)
        self.wait_ready(unlimited.port)

        rng = random.Random(1)
        users = [f"reader-{n}" for n in range(profile.users)]
        for user, followed in zip(users, follow_sets(len(users), rng), strict=True):
            subscriptions.replace(r, user, followed)
        auth = {u: f"Bearer {issue_token(settings, u)}" for u in users}
        body, cold_ms = self.warm(feed.port, users, auth)
        r.set(FLOOR_KEY, body)
        status, _, floor_body = http_get(floor.port, "/floor")
        if status != 200 or len(floor_body) != len(body):
            raise RuntimeError("the floor does not serve the stored page")

        feed_targets = [(f"/v1/users/{u}/feed?limit={PAGE_LIMIT}", auth[u]) for u in users]
        floor_targets = [("/floor", auth[u]) for u in users]
        servers = (
            ("floor", floor, floor_targets),
            ("feed", feed, feed_targets),
            (UNLIMITED, unlimited, feed_targets),
        )
        runs: dict[str, list[LoadResult]] = {name: [] for name, _, _ in servers}
        recycled = dict.fromkeys(runs, 0)
        misses = 0
        for name, server, targets in servers:
            log(f"warming up {name} for {profile.warmup_seconds:g}s")
            self.load(server.port, targets, profile.warmup_seconds, self.tmp)
        for run in range(RUNS_PER_APP):
            for name, server, targets in servers:
                builds_before = self._lock_writes(r)
                with WorkerWatch(server) as watch:
                    result = self.load(server.port, targets, profile.run_seconds, self.tmp)
                recycled[name] += watch.recycled
                if name != "floor":
                    misses += self._lock_writes(r) - builds_before
                runs[name].append(result)
                log(
                    f"run {run + 1} {name}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
                    f"p99 {result.p99_ms:.2f} ms, errors {result.errors}"
                )
        self.report_http(runs, recycled, misses, len(body), cold_ms)
        self.events(feed.port, users, auth, r)
        self.with_experiment(feed, feed_targets, users, auth, settings, runs["feed"])

    def with_experiment(
        self,
        feed: Gunicorn,
        targets: list[tuple[str, str]],
        users: Sequence[str],
        auth: dict[str, str],
        settings: Settings,
        baseline: list[LoadResult],
    ) -> None:
        """The cached feed again, with a two-variant experiment covering every reader."""
        admin = f"Bearer {issue_token(settings, 'bench-admin', admin=True)}"
        definition = {
            "name": "bench",
            "traffic": 1.0,
            "variants": [
                {"name": "control", "ranker": "tfidf", "params": {}, "weight": 1},
                {"name": "fresh", "ranker": "latest", "params": {}, "weight": 1},
            ],
        }
        conn = http.client.HTTPConnection(HOST, feed.port, timeout=30)
        try:
            http_post(conn, "/v1/experiments", json.dumps(definition).encode(), admin, (201,))
            http_post(conn, "/v1/experiments/bench/start", b"", admin, (200,))
        finally:
            conn.close()
        self.warm(feed.port, users, auth)  # each variant's lists, as readers would
        result = self.load(feed.port, targets, self.profile.run_seconds, self.tmp)
        base_rps = median([b.rps for b in baseline])
        base_p50 = median([b.p50_ms for b in baseline])
        log(f"feed with experiment: {result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms")
        section = "6. feed with an experiment running"
        self.report.add(
            section,
            "feed throughput",
            result.rps,
            "req/s",
            note=f"without: {base_rps:,.0f} req/s (section 1)",
        )
        self.report.add(
            section, "feed p50", result.p50_ms, "ms", note=f"without: {base_p50:.2f} ms (section 1)"
        )
        self.report.add(section, "feed p99", result.p99_ms, "ms")
        self.report.add(section, "errors", result.errors, "", target="0", ok=result.errors == 0)
        cost = assignment_cost_us()
        self.report.add(
            section,
            "assignment per request",
            cost,
            "us",
            target="< 200 us",
            ok=cost < 200,
            note="parse_running + assign, in-process, median",
        )

    def events(self, port: int, users: Sequence[str], auth: dict[str, str], r: redis.Redis) -> None:
        """Event ingestion: EVENT_CLIENTS devices posting batches of EVENT_BATCH events."""
        ids = [i.decode() for i in r.zrange(articles.TIMELINE_KEY, 0, 999)]
        rng = random.Random(7)
        bodies = []
        for user in users:
            events = [
                {
                    "type": rng.choice(("impression",) * 9 + ("click",)),
                    "user_id": user,
                    "article_id": rng.choice(ids),
                    "feed_id": "bench",
                    "position": n,
                }
                for n in range(EVENT_BATCH)
            ]
            bodies.append((json.dumps({"events": events}).encode(), auth[user]))
        accepted = [0] * EVENT_CLIENTS
        latencies: list[list[float]] = [[] for _ in range(EVENT_CLIENTS)]
        deadline = time.monotonic() + self.profile.run_seconds

        def device(slot: int) -> None:
            conn = http.client.HTTPConnection(HOST, port, timeout=30)
            n = slot
            try:
                while time.monotonic() < deadline:
                    body, token = bodies[n % len(bodies)]
                    n += EVENT_CLIENTS
                    t0 = time.perf_counter()
                    payload = http_post(conn, "/v1/events", body, token, (202,))
                    latencies[slot].append((time.perf_counter() - t0) * 1000)
                    accepted[slot] += json.loads(payload)["accepted"]
            finally:
                conn.close()

        started = time.perf_counter()
        threads = [threading.Thread(target=device, args=(s,)) for s in range(EVENT_CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        flat = [ms for per in latencies for ms in per]
        log(f"events: {sum(accepted):,} accepted in {elapsed:.1f}s")
        note = f"{EVENT_CLIENTS} clients, batches of {EVENT_BATCH}"
        rate = sum(accepted) / elapsed
        self.report.add(
            "5. events",
            "events accepted",
            rate,
            "ev/s",
            target=f">= {EVENTS_TARGET:,.0f}",
            ok=rate >= EVENTS_TARGET,
            note=note,
        )
        self.report.add("5. events", "batch latency p50", median(flat), "ms")
        self.report.add("5. events", "batch latency p99", percentile(flat, 99), "ms")

    @staticmethod
    def _lock_writes(r: redis.Redis) -> int:
        """Feed builds leave a SET (the single-flight lock); a pure hit run issues none."""
        stats = r.info("commandstats").get("cmdstat_set", {})
        return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0

    def http_ingest(self, port: int, settings: Settings, wire: list[dict[str, Any]]) -> None:
        admin = f"Bearer {issue_token(settings, 'bench-admin', admin=True)}"
        bodies = [
            json.dumps({"articles": wire[i : i + INGEST_BATCH]}).encode()
            for i in range(0, len(wire), INGEST_BATCH)
        ]
        conn = http.client.HTTPConnection(HOST, port, timeout=120)
        rates: list[float] = []
        total = 0.0
        try:
            for body in bodies:
                t0 = time.perf_counter()
                payload = http_post(conn, "/v1/articles", body, admin, (200,))
                elapsed = time.perf_counter() - t0
                created = len(json.loads(payload)["created"])
                if created != INGEST_BATCH:
                    raise RuntimeError(f"POST /v1/articles created {created} of {INGEST_BATCH}")
                rates.append(created / elapsed)
                total += elapsed
        finally:
            conn.close()
        log(f"HTTP ingest of {len(wire):,} in {total:.1f}s")
        self.report.add(
            "3. ingest",
            f"HTTP POST /v1/articles, {len(wire) // 1000}k",
            median(rates),
            "art/s",
            note=f"median of {len(rates)} batches of {INGEST_BATCH}, one client",
        )
        self.report.details["ingest_http_batch_rates"] = rates

    def wait_ready(self, port: int) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            status, _, body = http_get(port, "/readyz")
            if status == 200:
                ready = json.loads(body)
                if ready["model_corpus_version"] >= ready["corpus_version"]:
                    return
            time.sleep(0.2)
        raise RuntimeError("the feed service never reported a model covering the corpus")

    def warm(
        self, port: int, users: Sequence[str], auth: dict[str, str]
    ) -> tuple[bytes, list[float]]:
        """First page of every user (a miss: built and cached), then check each now hits."""
        log(f"warming {len(users)} feeds")
        cold_ms: list[float] = []
        sizes: list[int] = []
        sample = b""
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        try:
            for expect in ("miss", "hit"):
                for user in users:
                    t0 = time.perf_counter()
                    conn.request(
                        "GET",
                        f"/v1/users/{user}/feed?limit={PAGE_LIMIT}",
                        headers={"Authorization": auth[user]},
                    )
                    response = conn.getresponse()
                    body = response.read()
                    elapsed = (time.perf_counter() - t0) * 1000
                    cache = response.getheader("X-Feed-Cache")
                    if response.status != 200 or cache != expect:
                        raise RuntimeError(
                            f"warming {user}: status {response.status}, cache {cache}, "
                            f"expected {expect}: {body[:300]!r}"
                        )
                    if len(json.loads(body)["items"]) != PAGE_LIMIT:
                        raise RuntimeError(f"{user}'s first page is not {PAGE_LIMIT} items")
                    if expect == "miss":
                        cold_ms.append(elapsed)
                    else:
                        sizes.append(len(body))
        finally:
            conn.close()
        # The floor serves a real page whose size is the median page size.
        target = int(median(sizes))
        sample = min(
            (self._page(port, u, auth[u]) for u in users[:50]), key=lambda b: abs(len(b) - target)
        )
        self.report.details["http_cold_first_page_ms"] = cold_ms
        self.report.details["page_bytes"] = sizes
        return sample, cold_ms

    @staticmethod
    def _page(port: int, user: str, auth: str) -> bytes:
        _, _, body = http_get(
            port, f"/v1/users/{user}/feed?limit={PAGE_LIMIT}", {"Authorization": auth}
        )
        return body

    def report_http(
        self,
        runs: dict[str, list[LoadResult]],
        recycled: dict[str, int],
        misses: int,
        body_bytes: int,
        cold_ms: list[float],
    ) -> None:
        section = "1. cached feed vs floor (HTTP)"
        rps = {name: median([r.rps for r in results]) for name, results in runs.items()}
        for name in ("floor", "feed"):
            self.report.add_load(section, name, runs[name])
        ratio = rps["feed"] / rps["floor"]
        self.report.add(
            section,
            "feed / floor throughput",
            ratio,
            "",
            target=f">= {FEED_TARGET_RATIO:.2f}",
            ok=ratio >= FEED_TARGET_RATIO,
            note="as shipped: rate limits, metrics, request ids on",
        )
        self.report.add(
            section,
            "reference: feed without rate limits",
            rps[UNLIMITED],
            "req/s",
            note=f"{rps[UNLIMITED] / rps['floor']:.3f} of the floor; runs: "
            + ", ".join(f"{r.rps:,.0f}" for r in runs[UNLIMITED]),
        )
        errors = sum(r.errors for results in runs.values() for r in results)
        self.report.add(
            section, "failed requests (all runs)", errors, "", target="0", ok=errors == 0
        )
        self.report.add(
            section, "feed builds during feed runs", misses, "", target="0", ok=misses == 0
        )
        self.report.add(
            section,
            "page body size",
            body_bytes,
            "bytes",
            note=f"{PAGE_LIMIT} items; the floor serves this page",
        )
        self.report.add(
            section,
            "cold first page over HTTP p50",
            percentile(cold_ms, 50),
            "ms",
            note=f"warm-up of {len(cold_ms)} users, sequential, one client",
        )
        for name in runs:
            self.report.add(
                section,
                f"{name}: workers recycled in runs",
                recycled[name],
                "",
                note="gunicorn max_requests",
            )
        self.report.details["http_runs"] = {
            name: [asdict(r) | {"rps": r.rps} for r in results] for name, results in runs.items()
        }

    def report_reindex(self) -> None:
        section = "4. reindex (feed.reindex.reindex)"
        for size in sorted(self.reindex_samples):
            samples = self.reindex_samples[size]
            total = median([s.read_seconds + s.fit_seconds + s.store_seconds for s in samples])
            label = f"{size // 1000}k articles"
            at_target = size >= 100_000
            self.report.add(
                section,
                f"{label}: total",
                total,
                "s",
                target=f"< {REINDEX_100K_TARGET_S:g} s" if at_target else "",
                ok=total < REINDEX_100K_TARGET_S if at_target else None,
                note=f"median of {len(samples)}",
            )
            for part in ("read", "fit", "store"):
                value = median([getattr(s, f"{part}_seconds") for s in samples])
                self.report.add(section, f"{label}: {part}", value, "s")
            self.report.details[f"reindex_{size}"] = [
                {
                    "read_seconds": s.read_seconds,
                    "fit_seconds": s.fit_seconds,
                    "store_seconds": s.store_seconds,
                    "articles": s.meta.articles,
                }
                for s in samples
            ]


# -- entry point ------------------------------------------------------------------------------


def assignment_cost_us() -> float:
    """Median cost of deciding a reader's variant, as the feed does on every request."""
    definition = Experiment(
        name="bench",
        traffic=1.0,
        salt="bench",
        variants=(Variant("control", "tfidf", {}, 1.0), Variant("fresh", "latest", {}, 1.0)),
        status="running",
    )
    raw = dump_running([definition])
    samples = []
    for n in range(20_000):
        fresh = bytes(raw)  # a new object per request, as Redis returns it
        t0 = time.perf_counter()
        assign(parse_running(fresh), f"user-{n}")
        samples.append((time.perf_counter() - t0) * 1e6)
    return median(samples)


def machine_info(server: RedisServer, load_name: str) -> dict[str, Any]:
    info = redis.Redis.from_url(server.url).info("server")
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "redis": info.get("redis_version"),
        "platform": platform.platform(terse=True),
        "load generator": load_name,
        "gunicorn": f"{WORKERS} workers x {THREADS} threads (gthread)",
        "connections": CONNECTIONS,
        # Other work on the machine skews everything: a high figure here flags a noisy run.
        "load avg at start": f"{os.getloadavg()[0]:.2f}",
    }


@contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every process this script started is stopped."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(profile: Profile, loadgen: str, output: Path) -> Report:
    load_name, load = pick_load_generator(loadgen)
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    t_start = time.perf_counter()
    with ExitStack() as stack:
        stack.enter_context(exit_on_sigterm())
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="newsfeed-bench-")))
        server = stack.enter_context(RedisServer(tmp / "redis", appendonly=False))
        log(f"redis-server on {server.url}")
        report = Report(
            started, "quick" if profile.quick else "full", machine_info(server, load_name)
        )
        bench = Bench(profile, report, server, secrets.token_urlsafe(32), tmp, load)
        try:
            bench.http()
            cluster_vs_single(bench)
            for size in profile.cold_sizes:
                bench.in_process(size)
                breaking_news(bench, size)  # on the corpus and model in_process left
            reindex_and_precompute(bench)  # reuses the corpus the last size left
        except BaseException as exc:
            report.notes.append(f"ABORTED, figures above are partial: {exc!r}")
            _write(report, output)
            raise
        bench.report_reindex()
        report.notes += [
            f"HTTP runs: {RUNS_PER_APP} x {profile.run_seconds:g}s per app, alternating floor "
            f"and feed after a {profile.warmup_seconds:g}s warm-up each; throughput and "
            "latencies are medians over the runs.",
            "The load generator runs on the same machine as the servers and Redis.",
            "gunicorn: config/gunicorn.py as shipped (access log to /dev/null), "
            f"NEWSFEED_AUTO_REINDEX=false; {profile.users} users with 2-3 categories each.",
            f"Rate limits on: per user as shipped, per IP {PER_IP_LIMIT} (all load comes from "
            "one IP); both are counted on every /v1 request.",
            "Cold pages: each a new user, so each a full miss (rank, store, render).",
        ]
        if profile.quick:
            report.notes.append("--quick: 100k corpus skipped; the 100k targets are not checked.")
        report.details["elapsed_seconds"] = time.perf_counter() - t_start
    _write(report, output)
    return report


def _write(report: Report, output: Path) -> None:
    report.sort()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report.as_json(), indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="5 s runs, 10k corpus only")
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator (auto: wrk when on PATH)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON report path")
    parser.add_argument("--loadgen-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loadgen_worker:
        loadgen_worker(args.loadgen_worker)
        return
    report = run(PROFILES[args.quick], args.loadgen, args.output)
    print(report.render())
    print(f"\nJSON: {args.output}")


if __name__ == "__main__":
    main()
