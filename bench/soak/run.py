"""Soak the service with mixed traffic and one Redis restart: ``python -m bench.soak``.

Everything runs against processes this script starts and stops itself: a private
redis-server (AOF with ``appendfsync always``, so every acknowledged write is on disk) in a
temporary directory and gunicorn (2 workers x 4 threads, the service's own gunicorn config;
the per-IP rate limit raised, since every simulated reader shares this script's IP) on a
free port. After a demo corpus of 2,000 articles is ingested through the API and a
model covers it, an open-loop load runs for ``--minutes`` at ``--rate`` requests per
second: requests are scheduled on a fixed timeline and sent by a pool of threads with
keep-alive connections, so a slow server does not lower the offered rate. The mix:

- ~70% feed reads: first pages, and next pages through the last ``next_cursor``;
- ~15% subscription writes: follow / unfollow one category, or replace the followed set;
  at most one write per user is in flight, so "the last acknowledged state" is well defined;
- ~15% event batches of 10-50 impressions / clicks / reads / hides about articles the user
  was shown.

Halfway through, Redis is stopped (SIGTERM, or SIGKILL with ``--kill``), the traffic keeps
going, and ~5 s later Redis starts again on the same port and data directory. The outage
window runs from the stop to the first successful ``/readyz`` after the restart. Right
then every user's follows are checked against their last acknowledged write, and the
events stream against its length before the stop; at the end, again for follows, and the
stream length against the events acknowledged over the whole run.

The report (requests, errors by status inside and outside the outage, p50/p99 per kind,
worker memory after the warm-up and at the end) is printed and written as JSON to
``var/soak.json``; the gunicorn and redis logs are copied next to it. A target that is
missed reads MISS in the report; the exit status is non-zero only when the script itself
fails (an exception in the load generator included). Ctrl-C, SIGTERM and a watchdog (the
run's length plus 10 minutes) stop everything it started.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import platform
import random
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import redis

from api.tokens import issue_token
from api.worker import worker_process
from bench.run import (
    HOST,
    REPO,
    STARTUP_TIMEOUT_S,
    Gunicorn,
    exit_on_sigterm,
    free_port,
    percentile,
)
from config import ENV_PREFIX, Settings
from feed.demo import DEMO_CATEGORIES, generate_articles
from feed.events import STREAM_KEY, STREAM_MAX_LEN
from feed.redis_server import RedisServer

DEFAULT_OUTPUT = REPO / "var" / "soak.json"

WORKERS = 2
THREADS = 4
ARTICLES = 2000
INGEST_BATCH = 1000
PAGE_LIMIT = 20

# The load generator's pool: the schedule sets the rate as long as rate x latency stays
# below it (200 req/s at 2 s per request); slots sent late are counted in the report.
CLIENT_THREADS = 400
CLIENT_TIMEOUT_S = 10.0
# gunicorn closes keep-alive connections idle for `keepalive` (5 s) seconds; reusing one
# that old races the close, so a connection idle this long is replaced before a request.
IDLE_RECONNECT_S = 4.0
LATE_LIMIT_S = 30.0  # slots not sent this long after the end of the run are dropped
LATE_MARK_S = 0.1  # a request sent this late after its slot counts as "late"

OUTAGE_SECONDS = 5.0
RECOVERY_TIMEOUT_S = 60.0
WRITE_QUARANTINE_S = 30.0  # after a write whose request may still be in flight
CHECK_BUDGET_S = 120.0  # for reading back every user's follows (after the restart, at the end)

PER_IP_LIMIT = "10000000/minute"
WATCHDOG_SLACK_S = 600.0  # the whole run may take this much longer than the load
MEMORY_GROWTH_TARGET = 0.10
MEMORY_SAMPLE_S = 5.0

FEED_SHARE = 0.70
WRITE_SHARE = 0.15  # the rest are event batches
NEXT_PAGE_SHARE = 0.25  # of feed reads, when the user has a cursor
SEEN_KEPT = 100  # articles remembered per user for events
EVENT_TYPES = ("impression", "click", "read", "hide")
EVENT_WEIGHTS = (75, 12, 10, 3)

KINDS = ("feed first", "feed next", "follow", "unfollow", "replace", "events")
SLUGS = tuple(sorted(DEMO_CATEGORIES))


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- HTTP -------------------------------------------------------------------------------------


class Reply(NamedTuple):
    status: int
    body: bytes
    headers: http.client.HTTPMessage


class Client:
    """One keep-alive connection, replaced after an error or when it has been idle too long."""

    def __init__(self, port: int, timeout: float = CLIENT_TIMEOUT_S) -> None:
        self.port = port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._last_used = 0.0

    def request(self, method: str, path: str, auth: str | None = None, body: Any = None) -> Reply:
        now = time.monotonic()
        if self._conn is None or now - self._last_used > IDLE_RECONNECT_S:
            self.close()
            self._conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        headers = {"Authorization": auth} if auth else {}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            self._conn.request(method, path, body=payload, headers=headers)
            response = self._conn.getresponse()
            data = response.read()
        except BaseException:
            self.close()
            raise
        if response.will_close:
            self.close()
        self._last_used = time.monotonic()
        return Reply(response.status, data, response.headers)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def error_code(reply: Reply) -> str:
    try:
        return str(json.loads(reply.body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "?"


def status_key(reply: Reply) -> str:
    return str(reply.status) if reply.status < 400 else f"{reply.status} {error_code(reply)}"


def probe(port: int, path: str, timeout: float = 5.0) -> Reply | None:
    client = Client(port, timeout)
    try:
        return client.request("GET", path)
    except (OSError, http.client.HTTPException):
        return None
    finally:
        client.close()


# -- per-user state ---------------------------------------------------------------------------

Op = tuple[str, tuple[str, ...]]  # ("follow" | "unfollow" | "replace", slugs)


def apply_op(state: frozenset[str], op: Op) -> frozenset[str]:
    kind, slugs = op
    if kind == "follow":
        return state | set(slugs)
    if kind == "unfollow":
        return state - set(slugs)
    return frozenset(slugs)


@dataclass
class User:
    name: str
    auth: str
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    mutex: threading.Lock = field(default_factory=threading.Lock)  # seen, cursor
    acked: frozenset[str] | None = None  # categories of the last acknowledged write
    acked_at: float = 0.0
    acked_op: Op | None = None
    acks: int = 0
    ambiguous: list[Op] = field(default_factory=list)  # unknown outcome, since the last ack
    quarantine_until: float = 0.0
    cursor: str | None = None
    seen: list[tuple[str, str, int]] = field(default_factory=list)  # (article, feed_id, pos)
    found: frozenset[str] | None = None  # what the last check read

    def candidates(self) -> set[frozenset[str]]:
        """States the store may hold: the last ack with any of the ambiguous writes applied."""
        found = {self.acked if self.acked is not None else frozenset()}
        for op in self.ambiguous:
            found |= {apply_op(s, op) for s in found}
        return found

    def remember(self, page: dict[str, Any]) -> None:
        feed_id = str(page.get("feed_id") or "soak")[:64]
        items = [(str(item["id"]), feed_id, n) for n, item in enumerate(page.get("items", []))]
        with self.mutex:
            self.cursor = page.get("next_cursor")
            self.seen = (self.seen + items)[-SEEN_KEPT:]


# -- load -------------------------------------------------------------------------------------


class Sample(NamedTuple):
    kind: str
    status: str  # "200", "503 unavailable", "client RemoteDisconnected", ...
    scheduled: float  # seconds from the start of the load
    sent: float
    done: float
    user: str
    detail: str = ""  # server errors: the start of the body; feed pages: X-Feed-Cache


def is_server_error(status: str) -> bool:
    return status.startswith("5") or status.startswith("client ")


class Load:
    """Open-loop load: slot i is due at start + i / rate; a pool of threads sends the slots."""

    def __init__(
        self, port: int, users: Sequence[User], rate: float, seconds: float, seed: int
    ) -> None:
        self.port = port
        self.users = users
        self.rate = rate
        self.seconds = seconds
        self.seed = seed
        self.t0 = 0.0
        self.stop = threading.Event()
        self._slots = itertools.count()
        self._threads: list[threading.Thread] = []
        self.samples: list[list[Sample]] = [[] for _ in range(CLIENT_THREADS)]
        self.event_acks: list[list[tuple[float, int]]] = [[] for _ in range(CLIENT_THREADS)]
        self.events_ambiguous = [0] * CLIENT_THREADS
        self.events_rejected = [0] * CLIENT_THREADS
        self.write_skips = [0] * CLIENT_THREADS  # write slots sent as reads (users busy)
        self.bad_acks: list[list[str]] = [[] for _ in range(CLIENT_THREADS)]
        self.dropped = [0] * CLIENT_THREADS
        self.cache = [Counter[str]() for _ in range(CLIENT_THREADS)]
        self.crashes: list[str] = []  # exceptions in the load generator itself

    def now(self) -> float:
        return time.monotonic() - self.t0

    def start(self) -> None:
        self.t0 = time.monotonic() + 0.1
        for slot in range(CLIENT_THREADS):
            thread = threading.Thread(target=self._run, args=(slot,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def join(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def _run(self, slot: int) -> None:
        rng = random.Random(self.seed * 10_000 + slot)
        client = Client(self.port)
        try:
            while not self.stop.is_set():
                due = next(self._slots) / self.rate
                if due >= self.seconds:
                    return
                wait = due - self.now()
                if wait > 0 and self.stop.wait(wait):
                    return
                if self.now() > self.seconds + LATE_LIMIT_S:
                    self.dropped[slot] += 1
                    continue
                try:
                    self._one(slot, rng, client, due)
                except Exception:  # a bug here, or an answer it cannot read: report, go on
                    self.crashes.append(traceback.format_exc(limit=6))
                    client.close()
        finally:
            client.close()

    def _send(
        self,
        slot: int,
        client: Client,
        kind: str,
        due: float,
        method: str,
        path: str,
        user: User,
        body: Any = None,
    ) -> Reply | None:
        sent = self.now()
        try:
            reply: Reply | None = client.request(method, path, user.auth, body)
        except (OSError, http.client.HTTPException) as exc:
            reply = None
            status, detail = f"client {type(exc).__name__}", str(exc)[:200]
        else:
            assert reply is not None
            status = status_key(reply)
            if reply.status >= 500:
                detail = reply.body[:300].decode("utf-8", "replace")
            else:
                detail = reply.headers.get("X-Feed-Cache", "")
        self.samples[slot].append(Sample(kind, status, due, sent, self.now(), user.name, detail))
        return reply

    def _one(self, slot: int, rng: random.Random, client: Client, due: float) -> None:
        user = self.users[rng.randrange(len(self.users))]
        roll = rng.random()
        if roll >= FEED_SHARE + WRITE_SHARE:
            with user.mutex:
                seen = list(user.seen)
            if seen:
                self._events(slot, rng, client, due, user, seen)
                return
        elif roll >= FEED_SHARE:
            for candidate in [user, *rng.sample(self.users, min(4, len(self.users)))]:
                if candidate.quarantine_until > time.monotonic():
                    continue
                if candidate.write_lock.acquire(blocking=False):
                    try:
                        self._write(slot, rng, client, due, candidate)
                    finally:
                        candidate.write_lock.release()
                    return
            self.write_skips[slot] += 1
        self._feed(slot, rng, client, due, user)

    def _feed(self, slot: int, rng: random.Random, client: Client, due: float, user: User) -> None:
        with user.mutex:
            cursor = user.cursor
        path = f"/v1/users/{user.name}/feed?limit={PAGE_LIMIT}"
        kind = "feed first"
        if cursor is not None and rng.random() < NEXT_PAGE_SHARE:
            kind = "feed next"
            path += "&cursor=" + cursor
        reply = self._send(slot, client, kind, due, "GET", path, user)
        if reply is None:
            return
        if reply.status == 200:
            if kind == "feed first":
                self.cache[slot][reply.headers.get("X-Feed-Cache", "?")] += 1
            user.remember(json.loads(reply.body))
        elif reply.status == 400 and kind == "feed next":
            with user.mutex:
                if user.cursor == cursor:
                    user.cursor = None

    def _write(self, slot: int, rng: random.Random, client: Client, due: float, user: User) -> None:
        """Called with user.write_lock held: the only write of this user in flight."""
        followed = user.acked if user.acked is not None and not user.ambiguous else None
        pick = rng.random()
        op: Op
        if pick < 0.4 or (pick < 0.8 and followed is not None and len(followed) < 2):
            choices = [s for s in SLUGS if followed is None or s not in followed] or list(SLUGS)
            op = ("follow", (rng.choice(choices),))
        elif pick < 0.8:
            pool = sorted(followed) if followed else list(SLUGS)
            op = ("unfollow", (rng.choice(pool),))
        else:
            op = ("replace", tuple(sorted(rng.sample(SLUGS, rng.randint(2, 4)))))
        kind, slugs = op
        base = f"/v1/users/{user.name}/categories"
        if kind == "replace":
            reply = self._send(
                slot, client, kind, due, "PUT", base, user, {"categories": list(slugs)}
            )
        else:
            method = "PUT" if kind == "follow" else "DELETE"
            reply = self._send(slot, client, kind, due, method, f"{base}/{slugs[0]}", user)
        if reply is None:  # it may still be running on the server: keep off this user
            user.ambiguous.append(op)
            user.quarantine_until = time.monotonic() + WRITE_QUARANTINE_S
            return
        if reply.status >= 500:
            user.ambiguous.append(op)
            return
        if reply.status != 200:
            return  # refused: nothing changed
        state = frozenset(json.loads(reply.body)["categories"])
        expected = apply_op(user.acked or frozenset(), op) if not user.ambiguous else None
        if (expected is not None and state != expected) or state != apply_op(state, op):
            self.bad_acks[slot].append(
                f"{user.name}: {kind} {list(slugs)} acknowledged {sorted(state)}"
                + (f", expected {sorted(expected)}" if expected is not None else "")
            )
        user.acked, user.acked_at, user.acked_op = state, self.now(), op
        user.acks += 1
        user.ambiguous = []

    def _events(
        self,
        slot: int,
        rng: random.Random,
        client: Client,
        due: float,
        user: User,
        seen: list[tuple[str, str, int]],
    ) -> None:
        events = []
        for _ in range(rng.randint(10, 50)):
            article, feed_id, position = rng.choice(seen)
            kind = rng.choices(EVENT_TYPES, EVENT_WEIGHTS)[0]
            event: dict[str, Any] = {
                "type": kind,
                "user_id": user.name,
                "article_id": article,
                "feed_id": feed_id,
                "position": position,
            }
            if kind == "read":
                event["dwell_ms"] = rng.randint(2_000, 120_000)
            events.append(event)
        reply = self._send(
            slot, client, "events", due, "POST", "/v1/events", user, {"events": events}
        )
        if reply is not None and reply.status == 202:
            result = json.loads(reply.body)
            self.event_acks[slot].append((self.now(), int(result["accepted"])))
            self.events_rejected[slot] += len(result.get("rejected", []))
        elif reply is None or reply.status >= 500:
            self.events_ambiguous[slot] += len(events)

    # results

    def all_samples(self) -> list[Sample]:
        return sorted((s for chunk in self.samples for s in chunk), key=lambda s: s.scheduled)

    def accepted_events(self) -> int:
        return sum(n for chunk in self.event_acks for _, n in chunk)


# -- gunicorn workers' memory -----------------------------------------------------------------


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


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Options:
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
            self.check_follows_now()
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
        outage = self.outage
        with self.redis_client() as r, r.pipeline(transaction=True) as pipe:
            # One MULTI: the newest id and the length must describe the same stream.
            pipe.xrevrange(STREAM_KEY, count=1)
            pipe.xlen(STREAM_KEY)
            last, length = pipe.execute()
            outage.last_id = last[0][0].decode() if last else "0-0"
            outage.stream_before = int(length)
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
        deadline = time.monotonic() + RECOVERY_TIMEOUT_S
        while time.monotonic() < deadline:
            reply = probe(self.gunicorn.port, "/readyz", timeout=2.0)
            if reply is not None and reply.status == 200:
                outage.ready = self.load.now()
                break
            time.sleep(0.1)
        if outage.ready is None:
            log(f"the service did not become ready within {RECOVERY_TIMEOUT_S:g}s")
        else:
            log(f"ready again {outage.ready - outage.stopped:.2f}s after the stop")
        with self.redis_client() as r:
            newer = 0
            start = "(" + outage.last_id
            while True:
                chunk = r.xrange(STREAM_KEY, min=start, max="+", count=10_000)
                newer += len(chunk)
                if len(chunk) < 10_000:
                    break
                start = "(" + chunk[-1][0].decode()
            outage.stream_after = int(r.xlen(STREAM_KEY)) - newer

    def check_follows_now(self) -> None:
        """Every user's follows right after the restart, with that user's writes held off."""
        t0 = time.monotonic()
        client = Client(self.gunicorn.port)
        lost: list[dict[str, Any]] = []
        unacked_applied = 0
        skipped = 0
        checked = 0
        deadline = t0 + CHECK_BUDGET_S
        try:
            for user in self.users:
                if self.outage.ready is None or time.monotonic() > deadline:
                    skipped += 1  # not ready again, or too slow to answer: no verdict
                    continue
                if not user.write_lock.acquire(timeout=CLIENT_TIMEOUT_S + 5):
                    skipped += 1
                    continue
                try:
                    if user.quarantine_until > time.monotonic():
                        skipped += 1
                        continue
                    verdict = self._verify(client, user)
                finally:
                    user.write_lock.release()
                if verdict == "unreadable":
                    skipped += 1
                    continue
                checked += 1
                if verdict == "lost":
                    lost.append(self._lost_detail(user))
                elif verdict == "unacked":
                    unacked_applied += 1
        finally:
            client.close()
        self.outage.follows = {
            "checked": checked,
            "skipped": skipped,
            "lost": len(lost),
            "unacknowledged_applied": unacked_applied,
            "lost_detail": lost[:20],
            "seconds": time.monotonic() - t0,
        }
        log(f"follows after the restart: {checked} checked, {len(lost)} lost, {skipped} skipped")

    def _verify(self, client: Client, user: User) -> str:
        """'ok', 'unacked' (an unacknowledged write took effect), 'lost' or 'unreadable'."""
        got: frozenset[str] | None = None
        for _ in range(20):
            try:
                reply = client.request("GET", f"/v1/users/{user.name}/categories", user.auth)
            except (OSError, http.client.HTTPException):
                time.sleep(0.25)
                continue
            if reply.status == 200:
                got = frozenset(json.loads(reply.body)["categories"])
                break
            time.sleep(0.25)
        if got is None:
            return "unreadable"
        user.found = got
        if got == user.acked:
            return "ok"
        return "unacked" if got in user.candidates() else "lost"

    def _lost_detail(self, user: User) -> dict[str, Any]:
        got = user.found
        return {
            "user": user.name,
            "acknowledged": sorted(user.acked or ()),
            "acknowledged_at": round(user.acked_at, 3),
            "acknowledged_op": list(user.acked_op) if user.acked_op else None,
            "ambiguous_ops": [list(op) for op in user.ambiguous],
            "found": sorted(got) if got is not None else None,
        }

    def final_checks(self) -> dict[str, Any]:
        time.sleep(1.0)  # let any request still queued in gunicorn finish
        client = Client(self.gunicorn.port)
        verdicts: Counter[str] = Counter()
        lost: list[dict[str, Any]] = []
        deadline = time.monotonic() + CHECK_BUDGET_S
        try:
            for user in self.users:
                late = time.monotonic() > deadline
                verdict = "unchecked" if late else self._verify(client, user)
                verdicts[verdict] += 1
                if verdict == "lost":
                    lost.append(self._lost_detail(user))
        finally:
            client.close()
        with self.redis_client() as r:
            stream = int(r.xlen(STREAM_KEY))
        accepted = self.load.accepted_events()
        return {
            "follows": {
                "users": len(self.users),
                "acknowledged_writes": sum(u.acks for u in self.users),
                "verdicts": dict(verdicts),
                "lost": len(lost),
                "lost_detail": lost[:20],
            },
            "events": {
                "accepted": accepted,
                "batches_acknowledged": sum(len(c) for c in self.load.event_acks),
                "rejected_in_acknowledged_batches": sum(self.load.events_rejected),
                "in_unacknowledged_batches": sum(self.load.events_ambiguous),
                "stream_length": stream,
                "capped": stream >= STREAM_MAX_LEN * 0.9,
                "lost": max(0, accepted - stream),
                "unacknowledged_stored": max(0, stream - accepted),
            },
        }


# -- the report -------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """An aligned text table; align has one letter per column, l or r (default: l then r)."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    align = align or "l" + "r" * (len(headers) - 1)

    def line(cells: Sequence[str]) -> str:
        return (
            "  "
            + "  ".join(
                c.ljust(w) if a == "l" else c.rjust(w)
                for c, w, a in zip(cells, widths, align, strict=True)
            ).rstrip()
        )

    return "\n".join(
        [line(headers), "  " + "  ".join("-" * w for w in widths), *(line(r) for r in rows)]
    )


def ms(values: Sequence[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:.1f}" if values else "n/a"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def timeline(samples: Sequence[Sample], bucket: float, end: float) -> list[dict[str, Any]]:
    """Per bucket of send time: requests, errors and latency (send to last byte)."""
    rows = []
    for n in range(int(end // bucket) + 1):
        lo, hi = n * bucket, (n + 1) * bucket
        mine = [s for s in samples if lo <= s.sent < hi]
        lat = [s.done - s.sent for s in mine if not s.status.startswith("client ")]
        rows.append(
            {
                "from": lo,
                "sent": len(mine),
                "errors": sum(1 for s in mine if s.status[0] not in "23"),
                "server_errors": sum(1 for s in mine if is_server_error(s.status)),
                "p50_ms": percentile(lat, 50) * 1000 if lat else None,
                "p99_ms": percentile(lat, 99) * 1000 if lat else None,
                "max_ms": max(lat) * 1000 if lat else None,
            }
        )
    return rows


@dataclass
class Target:
    label: str
    value: str
    target: str
    ok: bool
    note: str = ""


def build_report(
    soak: Soak, checks: dict[str, Any], started: str, elapsed: float
) -> tuple[str, dict[str, Any]]:
    options, load, outage = soak.options, soak.load, soak.outage
    samples = load.all_samples()
    end = max([options.seconds, *(s.done for s in samples)])
    w0, w1 = outage.window(end)

    def inside(s: Sample) -> bool:
        return s.sent <= w1 and s.done >= w0

    # per kind
    kind_rows = []
    kind_json: dict[str, Any] = {}
    for kind in (*KINDS, "all"):
        mine = [s for s in samples if kind == "all" or s.kind == kind]
        ok = [s for s in mine if s.status[0] in "23"]
        lat = [s.done - s.sent for s in mine if not s.status.startswith("client ")]
        lat_out = [s.done - s.sent for s in mine if not inside(s) and s.status[0] in "23"]
        kind_rows.append(
            [
                kind,
                str(len(mine)),
                str(len(ok)),
                str(len(mine) - len(ok)),
                ms(lat, 50),
                ms(lat, 99),
                ms(lat_out, 50),
                ms(lat_out, 99),
            ]
        )
        kind_json[kind] = {
            "requests": len(mine),
            "ok": len(ok),
            "errors": len(mine) - len(ok),
            "p50_ms": percentile(lat, 50) * 1000 if lat else None,
            "p99_ms": percentile(lat, 99) * 1000 if lat else None,
            "ok_outside_outage_p50_ms": percentile(lat_out, 50) * 1000 if lat_out else None,
            "ok_outside_outage_p99_ms": percentile(lat_out, 99) * 1000 if lat_out else None,
        }
    lateness = [s.sent - s.scheduled for s in samples]
    from_schedule = [s.done - s.scheduled for s in samples]
    late = sum(1 for x in lateness if x > LATE_MARK_S)

    # errors
    errors_in: Counter[str] = Counter()
    errors_out: Counter[str] = Counter()
    for s in samples:
        if s.status[0] not in "23":
            (errors_in if inside(s) else errors_out)[s.status] += 1
    error_rows = [
        [status, str(errors_out[status]), str(errors_in[status])]
        for status in sorted(set(errors_in) | set(errors_out))
    ]
    server_out = [s for s in samples if is_server_error(s.status) and not inside(s)]
    server_in = sum(1 for s in samples if is_server_error(s.status) and inside(s))

    # memory
    mem_rows = []
    growths: list[float] = []
    replaced = set(soak.memory_start) ^ set(soak.memory_end)
    for pid in sorted(set(soak.memory_start) | set(soak.memory_end)):
        a, b = soak.memory_start.get(pid), soak.memory_end.get(pid)
        growth = (b - a) / a if a and b else None
        if growth is not None:
            growths.append(growth)
        mem_rows.append(
            [
                str(pid),
                f"{a / 1024:.1f} MB" if a else "-",
                f"{b / 1024:.1f} MB" if b else "-",
                f"{growth * 100:+.1f}%" if growth is not None else "n/a",
            ]
        )

    follows, events = checks["follows"], checks["events"]
    at_restart = outage.follows
    lost_writes = follows["lost"] + at_restart.get("lost", 0)
    stream_lost = max(0, outage.stream_before - outage.stream_after)
    lost_events = events["lost"] + stream_lost
    bad_acks = [b for chunk in load.bad_acks for b in chunk]
    cache: Counter[str] = Counter()
    for c in load.cache:
        cache.update(c)
    recovered = outage.ready is not None

    targets = [
        Target(
            "5xx outside the outage window",
            str(len(server_out)),
            "0",
            not server_out,
            "incl. connection resets and timeouts",
        ),
        Target(
            "lost acknowledged writes",
            str(lost_writes),
            "0",
            lost_writes == 0,
            f"after the restart {at_restart.get('lost', 0)}, at the end {follows['lost']}",
        ),
        Target(
            "lost acknowledged events",
            str(lost_events) if not events["capped"] else "n/a",
            "0",
            lost_events == 0,
            f"across the restart {stream_lost}, over the run {events['lost']}",
        ),
        Target(
            "worker memory growth (max)",
            f"{max(growths) * 100:+.1f}%" if growths else "n/a",
            f"< {MEMORY_GROWTH_TARGET * 100:.0f}%",
            bool(growths) and not replaced and max(growths) < MEMORY_GROWTH_TARGET,
            "workers replaced during the run: " + ", ".join(map(str, sorted(replaced)))
            if replaced
            else "per worker, after warm-up to end",
        ),
        Target(
            "ready again after the restart",
            f"{w1 - outage.started:.2f} s" if recovered else "never",
            f"< {RECOVERY_TIMEOUT_S:g} s",
            recovered,
            "from redis-server answering PING to /readyz 200",
        ),
    ]

    sent = len(samples)
    achieved = sent / options.seconds
    bucket = max(5.0, round(options.seconds / 12 / 5) * 5)
    lines = [
        f"newsfeed soak, started {started}: {options.minutes:g} min at {options.rate:g} req/s, "
        f"{options.users} users, Redis restart by {outage.signal}",
        f"service: {ENV_PREFIX}RATE_LIMIT_PER_IP={PER_IP_LIMIT} (one client IP), "
        "other settings as shipped; AOF appendfsync always",
        f"machine: cpus {os.cpu_count()}, python {platform.python_version()}, "
        f"gunicorn {WORKERS} workers x {THREADS} threads (gthread), {ARTICLES:,} articles, "
        f"load avg (1 min) at start {soak.load_avg_start:.2f}, at end {os.getloadavg()[0]:.2f}",
        "",
        "requests (latency: send to last byte, ms; 'ok out' = 2xx/3xx outside the outage)",
        table(
            ["kind", "requests", "ok", "errors", "p50", "p99", "ok out p50", "ok out p99"],
            kind_rows,
        ),
        f"  offered {options.rate:g} req/s, sent {sent:,} ({achieved:.1f} req/s); "
        f"sent > {LATE_MARK_S * 1000:.0f} ms after their slot: {late:,} "
        f"(max {max(lateness, default=0) * 1000:.0f} ms); dropped {sum(load.dropped)}; "
        f"p99 from slot {ms(from_schedule, 99)} ms",
        f"  write slots sent as reads (users' writes in flight): {sum(load.write_skips)}; "
        f"first pages from cache: hit {cache['hit']:,}, miss {cache['miss']:,}",
        "",
        f"timeline ({bucket:g} s buckets by send time; '*' overlaps the outage window)",
        table(
            ["from s", "sent", "errors", "5xx", "p50 ms", "p99 ms", "max ms", ""],
            [
                [
                    f"{b['from']:.0f}",
                    str(b["sent"]),
                    str(b["errors"]),
                    str(b["server_errors"]),
                    _num(b["p50_ms"]),
                    _num(b["p99_ms"]),
                    _num(b["max_ms"]),
                    "*" if b["from"] <= w1 and b["from"] + bucket >= w0 else "",
                ]
                for b in timeline(samples, bucket, end)
            ],
            "rrrrrrrl",
        ),
        "",
        "errors by status",
        table(["status", "outside outage", "inside outage"], error_rows or [["none", "0", "0"]]),
        "",
        f"redis outage ({outage.signal}), seconds from the start of the load",
        table(
            ["moment", "at"],
            [
                ["redis stopped", f"{outage.stopped:.2f}"],
                ["redis answering again", f"{outage.started:.2f}"],
                ["first /readyz 200", f"{outage.ready:.2f}" if recovered else "never"],
                ["window", f"{w1 - w0:.2f} s"],
            ],
        ),
        f"  requests overlapping the window: {sum(1 for s in samples if inside(s)):,}, "
        f"of which server errors {server_in:,}",
        "",
        "durability",
        table(
            ["check", "value"],
            [
                ["acknowledged subscription writes", f"{follows['acknowledged_writes']:,}"],
                [
                    "users checked after the restart",
                    f"{at_restart.get('checked', 0)} (skipped {at_restart.get('skipped', 0)})",
                ],
                ["  lost acknowledged writes", str(at_restart.get("lost", 0))],
                [
                    "  unacknowledged writes applied",
                    str(at_restart.get("unacknowledged_applied", 0)),
                ],
                ["users checked at the end", str(follows["users"])],
                [
                    "  verdicts",
                    ", ".join(f"{k} {v}" for k, v in sorted(follows["verdicts"].items())),
                ],
                ["  lost acknowledged writes", str(follows["lost"])],
                ["acks inconsistent with their write", str(len(bad_acks))],
                ["events in the stream before the stop", f"{outage.stream_before:,}"],
                ["  of those, present after the restart", f"{outage.stream_after:,}"],
                ["events accepted (202) over the run", f"{events['accepted']:,}"],
                [
                    "  rejected inside accepted batches",
                    str(events["rejected_in_acknowledged_batches"]),
                ],
                ["events in failed batches", f"{events['in_unacknowledged_batches']:,}"],
                ["stream length at the end", f"{events['stream_length']:,}"],
                ["  stored without an acknowledgement", f"{events['unacknowledged_stored']:,}"],
            ],
        ),
        "",
        f"worker memory (VmRSS) after the {options.warmup:g} s warm-up and at the end",
        table(["pid", "after warm-up", "end", "growth"], mem_rows or [["none", "-", "-", "n/a"]]),
        "",
        "targets",
        table(
            ["target", "value", "target", "status", "note"],
            [[t.label, t.value, t.target, "PASS" if t.ok else "MISS", t.note] for t in targets],
            "lrlll",
        ),
    ]
    if server_out:
        lines += ["", "server errors outside the outage window (first 10)"]
        for s in server_out[:10]:
            lines.append(f"  +{s.sent:.2f}s {s.kind}: {s.status} {s.detail[:160]!r}")
    slowest = sorted((s for s in samples if not inside(s)), key=lambda s: s.sent - s.done)[:5]
    if slowest:
        lines += ["", "slowest requests outside the outage window"]
        lines += [
            f"  +{s.sent:.2f}s {s.kind} {s.user}: {s.status} {s.detail[:40]} "
            f"in {(s.done - s.sent) * 1000:.0f} ms"
            for s in slowest
        ]
    other = [
        s
        for s in samples
        if not inside(s) and s.status[0] not in "23" and not is_server_error(s.status)
    ]
    if other:
        lines += ["", "other errors outside the outage window (first 5)"]
        lines += [f"  +{s.sent:.2f}s {s.kind} {s.user}: {s.status}" for s in other[:5]]
    if load.crashes:
        lines += ["", f"LOAD GENERATOR ERRORS: {len(load.crashes)} (the first)", load.crashes[0]]
    if bad_acks:
        lines += ["", "acks inconsistent with their write (first 10)"]
        lines += [f"  {b}" for b in bad_acks[:10]]
    for label, detail in (
        ("after the restart", at_restart.get("lost_detail", [])),
        ("at the end", follows["lost_detail"]),
    ):
        if detail:
            lines += ["", f"lost acknowledged writes {label} (first 10)"]
            lines += [f"  {json.dumps(d)}" for d in detail[:10]]
    lines += [
        "",
        f"lost acknowledged writes: {lost_writes}",
        f"lost acknowledged events: {lost_events if not events['capped'] else 'n/a (capped)'}",
        f"elapsed {elapsed:.0f} s; JSON: {options.output}",
    ]

    data = {
        "started": started,
        "options": {
            "minutes": options.minutes,
            "rate": options.rate,
            "users": options.users,
            "kill": options.kill,
            "seed": options.seed,
            "warmup_seconds": options.warmup,
        },
        "setup": {
            "workers": WORKERS,
            "threads": THREADS,
            "articles": ARTICLES,
            "client_threads": CLIENT_THREADS,
            "rate_limit_per_ip": PER_IP_LIMIT,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "load": {
            "sent": sent,
            "achieved_rps": achieved,
            "late": late,
            "max_lateness_ms": max(lateness, default=0) * 1000,
            "dropped": sum(load.dropped),
            "p99_from_slot_ms": percentile(from_schedule, 99) * 1000 if from_schedule else None,
            "write_skips": sum(load.write_skips),
            "first_page_cache": dict(cache),
            "per_second": timeline(samples, 1.0, end),
        },
        "kinds": kind_json,
        "errors": {"outside_outage": dict(errors_out), "inside_outage": dict(errors_in)},
        "server_errors_outside_outage": [s._asdict() for s in server_out[:100]],
        "other_errors_outside_outage": [
            s._asdict()
            for s in samples
            if not inside(s) and s.status[0] not in "23" and not is_server_error(s.status)
        ][:100],
        "slowest_outside_outage": [
            s._asdict()
            for s in sorted((s for s in samples if not inside(s)), key=lambda s: s.sent - s.done)[
                :50
            ]
        ],
        "outage": {
            "signal": outage.signal,
            "stopped": outage.stopped,
            "redis_started": outage.started,
            "ready": outage.ready,
            "window_seconds": w1 - w0,
            "stream_before": outage.stream_before,
            "stream_after": outage.stream_after,
            "follows_after_restart": at_restart,
        },
        "checks": checks,
        "bad_acks": bad_acks[:100],
        "load_generator_errors": load.crashes[:20],
        "memory": {
            "start_kb": soak.memory_start,
            "end_kb": soak.memory_end,
            "timeline": soak.memory.timeline,
        },
        "targets": [t.__dict__ | {"status": "PASS" if t.ok else "MISS"} for t in targets],
        "elapsed_seconds": elapsed,
    }
    return "\n".join(lines), data


# -- entry point ------------------------------------------------------------------------------


def _keep_logs(output: Path, names: dict[str, Path]) -> None:
    for label, source in names.items():
        try:
            shutil.copyfile(source, output.with_name(f"{output.stem}-{label}.log"))
        except OSError:
            pass


def run(options: Options) -> int:
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    t_start = time.monotonic()
    # Bounded: whatever hangs, the watchdog ends the run (and the cleanup below still runs).
    budget = options.seconds + WATCHDOG_SLACK_S
    watchdog = threading.Timer(budget, lambda: os.kill(os.getpid(), signal.SIGTERM))
    watchdog.daemon = True
    with ExitStack() as stack:
        stack.enter_context(exit_on_sigterm())
        watchdog.start()
        stack.callback(watchdog.cancel)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="newsfeed-soak-")))
        options.output.parent.mkdir(parents=True, exist_ok=True)
        redis_server = RedisServer(
            tmp / "redis", port=free_port(), appendonly=True, appendfsync="always"
        )
        stack.callback(redis_server.stop)
        redis_server.start()
        log(f"redis-server on {redis_server.url} (AOF, appendfsync always)")
        secret = secrets.token_urlsafe(32)
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        env.update(
            {
                ENV_PREFIX + "REDIS_URL": redis_server.url,
                ENV_PREFIX + "JWT_SECRET": secret,
                ENV_PREFIX + "HOST": HOST,
                ENV_PREFIX + "WORKERS": str(WORKERS),
                ENV_PREFIX + "THREADS": str(THREADS),
                ENV_PREFIX + "LOG_LEVEL": "warning",
                ENV_PREFIX + "DATA_DIR": str(tmp / "data"),
                # Every simulated reader shares this script's one IP: the per-IP budget (sized
                # for one client) would cap the whole run. The limiter itself stays on.
                ENV_PREFIX + "RATE_LIMIT_PER_IP": PER_IP_LIMIT,
            }
        )
        gunicorn = Gunicorn("soak", "wsgi:app", env, tmp)
        worker_log = tmp / "worker.log"
        stack.callback(
            _keep_logs,
            options.output,
            {"gunicorn": gunicorn.log_path, "redis": redis_server.log_path, "worker": worker_log},
        )
        stack.callback(gunicorn.stop)
        gunicorn.start()
        # As deployed: the web processes enqueue fits, a `newsfeed worker` runs them, through
        # the Redis restart too.
        stack.enter_context(worker_process(env, worker_log))
        soak = Soak(options, redis_server, gunicorn, secret)
        soak.run()
        checks = soak.final_checks()
        text, data = build_report(soak, checks, started, time.monotonic() - t_start)
    options.output.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(text)
    # A failure of this script (not of the service) must not pass for a clean run.
    return 1 if soak.load.crashes else 0


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=3.0, help="length of the load (3)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second (200)")
    parser.add_argument("--users", type=int, default=200, help="distinct readers (200)")
    parser.add_argument(
        "--kill", action="store_true", help="stop Redis with SIGKILL instead of SIGTERM"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON report path")
    args = parser.parse_args(argv)
    if not (0 < args.minutes <= 120) or not (0 < args.rate <= 5000) or args.users < 1:
        parser.error("need 0 < --minutes <= 120, 0 < --rate <= 5000 and --users >= 1")
    options = Options(args.minutes, args.rate, args.users, args.kill, args.seed, args.output)
    try:
        sys.exit(run(options))
    except KeyboardInterrupt:
        log("interrupted; cleaned up")
        sys.exit(130)


if __name__ == "__main__":
    main()
