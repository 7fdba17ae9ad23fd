"""The soak's phases: ingest and prepare readers, then the load with a Redis restart, a worker
kill and a Redis freeze, while articles are published and followed into feeds."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import STARTUP_TIMEOUT_S
from bench.servers import Gunicorn
from bench.soak import checks
from bench.soak.articles import LiveArticles
from bench.soak.client import Client, probe
from bench.soak.common import (
    ARTICLES,
    CLIENT_THREADS,
    CLIENT_TIMEOUT_S,
    FREEZE_AT,
    FREEZE_SECONDS,
    INGEST_BATCH,
    LATE_LIMIT_S,
    LIVE_TARGET_S,
    OUTAGE_SECONDS,
    PAGE_LIMIT,
    RESTART_AT,
    SLUGS,
    WORKER_KILL_AT,
    log,
)
from bench.soak.load import Load
from bench.soak.memory import MemoryWatch, worker_rss
from bench.soak.outages import Outage, Outages
from bench.soak.ready import ReadyWatch
from bench.soak.users import User
from bench.soak.worker_kill import WorkerKill, kill_during_fit
from bench.soak.workers import Workers
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


class Soak:
    """One soak: its readers, load, outages, worker and samples, and the phases driving them."""

    def __init__(
        self,
        options: Options,
        redis_server: RedisServer,
        gunicorn: Gunicorn,
        secret: str,
        workers: Workers,
    ) -> None:
        self.options = options
        self.gunicorn = gunicorn
        self.settings = Settings(jwt_secret=secret)
        rng = random.Random(options.seed)
        names = [f"soak-{n:04d}" for n in range(options.users)]
        self.users = [User(n, self._auth(n)) for n in names]
        self.initial = {
            u.name: tuple(sorted(rng.sample(SLUGS, rng.randint(2, 3)))) for u in self.users
        }
        # One reader per category, following only it, reads its feed for published articles.
        self.watchers = {
            slug: (f"soak-watch-{slug}", self._auth(f"soak-watch-{slug}")) for slug in SLUGS
        }
        self.admin = self._auth("soak-admin", admin=True)
        self.load = Load(gunicorn.port, self.users, options.rate, options.seconds, options.seed)
        self.workers = workers
        workers.clock = self.load.now
        self.outages = Outages(redis_server, gunicorn.port, self.load.now, kill=options.kill)
        self.outage = self.outages.restart
        self.freeze = self.outages.freeze
        self.live = LiveArticles(
            gunicorn.port, self.admin, self.watchers, self.load.now, options.seconds
        )
        self.ready = ReadyWatch(gunicorn.port, self.load.now)
        self.kill = WorkerKill()
        self._checks: list[threading.Thread] = []
        self.memory_start: dict[int, int] = {}
        self.memory_end: dict[int, int] = {}
        self.memory = MemoryWatch(gunicorn, self.load.now)
        self.load_avg_start = 0.0

    def _auth(self, user: str, *, admin: bool = False) -> str:
        return f"Bearer {issue_token(self.settings, user, ttl=86400, admin=admin)}"

    # setup

    def ingest(self) -> None:
        wire = generate_articles(ARTICLES, id_prefix="soak")
        client = Client(self.gunicorn.port, timeout=120)
        t0 = time.monotonic()
        try:
            for start in range(0, len(wire), INGEST_BATCH):
                batch = wire[start : start + INGEST_BATCH]
                reply = client.request("POST", "/v1/articles", self.admin, {"articles": batch})
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
        """Each user follows 2-3 categories (acknowledged writes) and has seen a first page;
        each watcher follows its one category."""
        client = Client(self.gunicorn.port)
        try:
            for user in self.users:
                slugs = self.initial[user.name]
                user.acked = self._follow(client, user.name, user.auth, slugs)
                user.acked_op = ("replace", slugs)
                user.acks += 1
                reply = client.request(
                    "GET", f"/v1/users/{user.name}/feed?limit={PAGE_LIMIT}", user.auth
                )
                if reply.status != 200:
                    raise RuntimeError(f"feed of {user.name}: {reply.status} {reply.body!r}")
                user.remember(json.loads(reply.body))
            for slug, (name, auth) in self.watchers.items():
                self._follow(client, name, auth, (slug,))
        finally:
            client.close()
        log(f"{len(self.users)} users follow 2-3 categories and have read a first page")

    @staticmethod
    def _follow(client: Client, name: str, auth: str, slugs: tuple[str, ...]) -> frozenset[str]:
        body = {"categories": list(slugs)}
        reply = client.request("PUT", f"/v1/users/{name}/categories", auth, body)
        if reply.status != 200:
            raise RuntimeError(f"follows of {name}: {reply.status} {reply.body!r}")
        return frozenset(json.loads(reply.body)["categories"])

    # the run

    def run(self) -> None:
        options = self.options
        seconds = options.seconds
        self.ingest()
        self.wait_model()
        self.prepare_users()
        log(
            f"load: {options.rate:g} req/s for {seconds:g}s ({CLIENT_THREADS} client threads); "
            f"Redis {self.outage.signal} at +{seconds * RESTART_AT:.0f}s, worker SIGKILL at "
            f"+{seconds * WORKER_KILL_AT:.0f}s, Redis SIGSTOP at +{seconds * FREEZE_AT:.0f}s "
            f"for {FREEZE_SECONDS:g}s"
        )
        self.load_avg_start = os.getloadavg()[0]
        self.load.start()
        self.memory.start()
        self.ready.start()
        self.live.start()
        try:
            self._sleep_until(options.warmup)
            self.memory_start = worker_rss(self.gunicorn)
            log(f"after warm-up: worker RSS {self._mb(self.memory_start)}")
            self._phases()
            self._sleep_until(seconds)
            if not self.load.join(LATE_LIMIT_S + CLIENT_TIMEOUT_S + 5):
                log("some client threads did not finish in time")
            self.memory_end = worker_rss(self.gunicorn)
        finally:
            self.load.stop.set()
            self.memory.stop()
            self.live.stop_publishing()
            for thread in self._checks:
                thread.join()
        log(f"load done: worker RSS {self._mb(self.memory_end)}")
        self.live.finish()  # the last articles' time to reach feeds, after the load
        last = self.live.last_ack()
        if last is not None:
            self.ready.wait_covered(last, last + LIVE_TARGET_S + 5)
        self.ready.stop()

    def _phases(self) -> None:
        """The restart, the worker kill and the freeze, each at its share of the run (or as
        soon as the one before is over); one that would not end inside the load is skipped.
        The follows checks after the outages run beside the load, not holding it up."""
        seconds = self.options.seconds
        self._sleep_until(seconds * RESTART_AT)
        if self._time_left("the Redis restart", OUTAGE_SECONDS):
            self.outages.restart_redis()
            self._check_follows(self.outage, "the restart")
        self._sleep_until(seconds * WORKER_KILL_AT)
        if self._time_left("the worker kill", 1.0):
            with self.outages.client() as r:
                self.kill = kill_during_fit(self.workers, r, self.live.publish, self.load.now)
        self._sleep_until(seconds * FREEZE_AT)
        if self._time_left("the Redis freeze", FREEZE_SECONDS):
            self.outages.freeze_redis()
            self._check_follows(self.freeze, "the freeze")

    def _time_left(self, phase: str, needs: float) -> bool:
        if self.load.now() + needs < self.options.seconds:
            return True
        log(f"{phase} skipped: the phases before it ran past the end of the load")
        return False

    def _check_follows(self, outage: Outage, after: str) -> None:
        def check() -> None:
            outage.follows = checks.follows_after_outage(
                self.gunicorn.port, self.users, ready=outage.ready is not None, after=after
            )

        thread = threading.Thread(target=check, daemon=True)
        thread.start()
        self._checks.append(thread)

    def _sleep_until(self, at: float) -> None:
        while (left := at - self.load.now()) > 0:
            time.sleep(min(left, 1.0))

    @staticmethod
    def _mb(rss: dict[int, int]) -> str:
        return ", ".join(f"{pid}: {kb / 1024:.1f} MB" for pid, kb in rss.items()) or "n/a"

    def final_checks(self) -> dict[str, Any]:
        """Every reader's follows and the stream's length, once the load is over."""
        time.sleep(1.0)  # let any request still queued in gunicorn finish
        follows = checks.follows_at_end(self.gunicorn.port, self.users)
        with self.outages.client() as r:
            stream = int(r.xlen(STREAM_KEY))
        return {"follows": follows, "events": checks.events_at_end(self.load, stream)}
