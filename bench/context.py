"""One bench run's state (Redis, report, profile, secret) and the steps its sections share."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from flask import Flask

from api import create_app
from api.extensions import EXTENSION
from bench.common import (
    HOST,
    PAGE_LIMIT,
    PER_IP_LIMIT,
    STARTUP_TIMEOUT_S,
    THREADS,
    WORKERS,
    Profile,
    http_get,
    load_catalog,
    log,
    median,
)
from bench.load import LoadFn, pick_load_generator
from bench.report import Report, machine_info
from config import ENV_PREFIX, Settings
from devtools.demo import generate_articles
from devtools.redis_server import RedisServer
from feed.model.reindex import ReindexResult, reindex


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
        """A reindex of the corpus in Redis, kept for section 4 (bench.cold.report_reindex)."""
        log(f"reindexing {size:,} articles")
        result = reindex(r, live_window_days=self.settings().live_window_days)
        self.reindex_samples.setdefault(size, []).append(result)
        log(
            f"reindex {size:,}: read {result.read_seconds:.1f}s, fit {result.fit_seconds:.1f}s, "
            f"store {result.store_seconds:.1f}s"
        )
        return result

    @contextmanager
    def app(self, **overrides: object) -> Iterator[Flask]:
        """The service's app in this process, on the bench's Redis, without background refits
        (the sections time their own); its services are closed afterwards."""
        settings = {
            "redis_url": self.server.url,
            "jwt_secret": self.secret,
            "auto_reindex": False,
            "log_level": "warning",
        }
        made = create_app({**settings, **overrides})
        try:
            yield made
        finally:
            made.extensions[EXTENSION].close()

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
                # Background refits would compete with the ingest being measured; the sections
                # run (and time) the reindex themselves and the workers load its model.
                ENV_PREFIX + "AUTO_REINDEX": "false",
                ENV_PREFIX + "DATA_DIR": str(self.tmp / "data"),
                # Every request comes from this one load generator's IP, far above a real
                # client's budget; the per-user limit stays as shipped, and both are counted.
                ENV_PREFIX + "RATE_LIMIT_PER_IP": PER_IP_LIMIT,
            }
        )
        return env

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


@contextmanager
def standalone(profile: Profile) -> Iterator[Bench]:
    """A Bench of its own for a section run alone (``python -m bench.<section>``): a private
    Redis in a temporary directory; the report is printed when the section is done."""
    load_name, load = pick_load_generator("auto")
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="newsfeed-bench-")))
        server = stack.enter_context(RedisServer(tmp / "redis", appendonly=False))
        report = Report(
            datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
            "quick" if profile.quick else "full",
            machine_info(server, load_name),
        )
        yield Bench(profile, report, server, secrets.token_urlsafe(32), tmp, load)
    report.sort()
    print(report.render())
