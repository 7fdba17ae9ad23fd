"""The soak's phases: ingest and prepare readers, then the load with a Redis restart half-way."""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench.common import STARTUP_TIMEOUT_S
from bench.servers import Gunicorn
from bench.soak import checks
from bench.soak.client import Client, probe
from bench.soak.common import (
    ARTICLES,
    CLIENT_THREADS,
    CLIENT_TIMEOUT_S,
    INGEST_BATCH,
    LATE_LIMIT_S,
    OUTAGE_SECONDS,
    PAGE_LIMIT,
    RECOVERY_TIMEOUT_S,
    SLUGS,
    log,
)
from bench.soak.load import Load
from bench.soak.memory import MemoryWatch, worker_rss
from bench.soak.users import User
from config import Settings
from devtools.demo import generate_articles
from devtools.redis_server import RedisServer
from feed.readers.events import STREAM_KEY
from feed.readers.tokens import issue_token


@dataclass
class Options:
    """The command line's choices (``python -m bench.soak --help``)."""

    minutes: float
    rate: float
    users: int
    kill: bool
    seed: int
    output: Path

    @property
    def seconds(self) -> float:
        return self.minutes * 60

    @property
    def warmup(self) -> float:
        return min(30.0, max(3.0, self.seconds * 0.2))


@dataclass
class Outage:
    signal: str
    stopped: float = float("nan")  # seconds from the start of the load
    started: float = float("nan")
    ready: float | None = None  # first 200 from /readyz after the restart
    stream_before: int = 0
    stream_after: int = 0  # entries with ids up to the last one before the stop
    last_id: str = ""
    follows: dict[str, Any] = field(default_factory=dict)

    def window(self, end: float) -> tuple[float, float]:
        return self.stopped, self.ready if self.ready is not None else end


class Soak:
    """One soak: its readers, load, outage and memory samples, and the phases driving them."""

    def __init__(
        self, options: Options, redis_server: RedisServer, gunicorn: Gunicorn, secret: str
    ) -> None:
        self.options = options
        self.redis_server = redis_server
        self.gunicorn = gunicorn
        self.settings = Settings(jwt_secret=secret)
        rng = random.Random(options.seed)
        names = [f"soak-{n:04d}" for n in range(options.users)]
        self.users = [User(n, f"Bearer {issue_token(self.settings, n, ttl=86400)}") for n in names]
        self.initial = {
            u.name: tuple(sorted(rng.sample(SLUGS, rng.randint(2, 3)))) for u in self.users
        }
        self.load = Load(gunicorn.port, self.users, options.rate, options.seconds, options.seed)
        self.outage = Outage("SIGKILL" if options.kill else "SIGTERM")
        self.memory_start: dict[int, int] = {}
        self.memory_end: dict[int, int] = {}
        self.memory = MemoryWatch(gunicorn, self.load.now)
        self.load_avg_start = 0.0

    def redis_client(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_server.url, socket_timeout=10)

    # setup

    def ingest(self) -> None:
        admin = f"Bearer {issue_token(self.settings, 'soak-admin', admin=True)}"
        wire = generate_articles(ARTICLES, id_prefix="soak")
        client = Client(self.gunicorn.port, timeout=120)
        t0 = time.monotonic()
        try:
            for start in range(0, len(wire), INGEST_BATCH):
                batch = wire[start : start + INGEST_BATCH]
                reply = client.request("POST", "/v1/articles", admin, {"articles": batch})
                if reply.status != 200:
                    raise RuntimeError(f"POST /v1/articles: {reply.status} {reply.body[:300]!r}")
                created = len(json.loads(reply.body)["created"])
                if created != len(batch):
                    raise RuntimeError(f"POST /v1/articles created {created} of {len(batch)}")
        finally:
            client.close()
        log(f"ingested {len(wire):,} articles in {time.monotonic() - t0:.1f}s")

    def wait_model(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            reply = probe(self.gunicorn.port, "/readyz")
            if reply is not None and reply.status == 200:
                ready = json.loads(reply.body)
                if ready["model_corpus_version"] >= ready["corpus_version"]:
                    log(f"model ready: {ready['model_articles']} articles")
                    return
            time.sleep(0.2)
        raise RuntimeError("the service never reported a model covering the corpus")

    def prepare_users(self) -> None:
        """Each user follows 2-3 categories (acknowledged writes) and has seen a first page."""
        client = Client(self.gunicorn.port)
        try:
            for user in self.users:
                slugs = self.initial[user.name]
                reply = client.request(
                    "PUT",
                    f"/v1/users/{user.name}/categories",
                    user.auth,
                    {"categories": list(slugs)},
                )
                if reply.status != 200:
                    raise RuntimeError(f"follows of {user.name}: {reply.status} {reply.body!r}")
                user.acked = frozenset(json.loads(reply.body)["categories"])
                user.acked_op = ("replace", slugs)
                user.acks += 1
                reply = client.request(
                    "GET", f"/v1/users/{user.name}/feed?limit={PAGE_LIMIT}", user.auth
                )
                if reply.status != 200:
                    raise RuntimeError(f"feed of {user.name}: {reply.status} {reply.body!r}")
                user.remember(json.loads(reply.body))
        finally:
            client.close()
        log(f"{len(self.users)} users follow 2-3 categories and have read a first page")

    # the run

    def run(self) -> None:
        options = self.options
        self.ingest()
        self.wait_model()
        self.prepare_users()
        log(
            f"load: {options.rate:g} req/s for {options.seconds:g}s "
            f"({CLIENT_THREADS} client threads); Redis {self.outage.signal} at "
            f"+{options.seconds / 2:.0f}s"
        )
        self.load_avg_start = os.getloadavg()[0]
        self.load.start()
        self.memory.start()
        try:
            self._sleep_until(options.warmup)
            self.memory_start = worker_rss(self.gunicorn)
            log(f"after warm-up: worker RSS {self._mb(self.memory_start)}")
            self._sleep_until(options.seconds / 2)
            self.restart_redis()
            self.outage.follows = checks.follows_after_restart(
                self.gunicorn.port, self.users, ready=self.outage.ready is not None
            )
            self._sleep_until(options.seconds)
            if not self.load.join(LATE_LIMIT_S + CLIENT_TIMEOUT_S + 5):
                log("some client threads did not finish in time")
            self.memory_end = worker_rss(self.gunicorn)
        finally:
            self.load.stop.set()
            self.memory.stop()
        log(f"load done: worker RSS {self._mb(self.memory_end)}")

    def _sleep_until(self, at: float) -> None:
        while (left := at - self.load.now()) > 0:
            time.sleep(min(left, 1.0))

    @staticmethod
    def _mb(rss: dict[int, int]) -> str:
        return ", ".join(f"{pid}: {kb / 1024:.1f} MB" for pid, kb in rss.items()) or "n/a"

    def restart_redis(self) -> None:
        """Stop Redis, start it again OUTAGE_SECONDS later, wait for /readyz; the stream is
        measured before the stop and after the restart."""
        outage = self.outage
        self._mark_stream()
        outage.stopped = self.load.now()
        if self.options.kill:
            self.redis_server.kill()
        else:
            self.redis_server.stop()
        log(f"redis stopped ({outage.signal}); {outage.stream_before:,} events in the stream")
        self._sleep_until(outage.stopped + OUTAGE_SECONDS)
        self.redis_server.start(timeout=30)
        outage.started = self.load.now()
        log(f"redis started again (pid {self.redis_server.pid}) on {self.redis_server.url}")
        self._wait_ready_again()
        if outage.ready is None:
            log(f"the service did not become ready within {RECOVERY_TIMEOUT_S:g}s")
        else:
            log(f"ready again {outage.ready - outage.stopped:.2f}s after the stop")
        outage.stream_after = self._stream_up_to_mark()

    def _mark_stream(self) -> None:
        """The stream's newest id and its length, just before the stop."""
        with self.redis_client() as r, r.pipeline(transaction=True) as pipe:
            # One MULTI: the newest id and the length must describe the same stream.
            pipe.xrevrange(STREAM_KEY, count=1)
            pipe.xlen(STREAM_KEY)
            last, length = pipe.execute()
            self.outage.last_id = last[0][0].decode() if last else "0-0"
            self.outage.stream_before = int(length)

    def _wait_ready_again(self) -> None:
        deadline = time.monotonic() + RECOVERY_TIMEOUT_S
        while time.monotonic() < deadline:
            reply = probe(self.gunicorn.port, "/readyz", timeout=2.0)
            if reply is not None and reply.status == 200:
                self.outage.ready = self.load.now()
                return
            time.sleep(0.1)

    def _stream_up_to_mark(self) -> int:
        """Entries now in the stream with ids up to the one marked before the stop."""
        with self.redis_client() as r:
            newer = 0
            start = "(" + self.outage.last_id
            while True:
                chunk = r.xrange(STREAM_KEY, min=start, max="+", count=10_000)
                newer += len(chunk)
                if len(chunk) < 10_000:
                    break
                start = "(" + chunk[-1][0].decode()
            return int(r.xlen(STREAM_KEY)) - newer

    def final_checks(self) -> dict[str, Any]:
        """Every reader's follows and the stream's length, once the load is over."""
        time.sleep(1.0)  # let any request still queued in gunicorn finish
        follows = checks.follows_at_end(self.gunicorn.port, self.users)
        with self.redis_client() as r:
            stream = int(r.xlen(STREAM_KEY))
        return {"follows": follows, "events": checks.events_at_end(self.load, stream)}
