"""Bench section 9: breaking news over HTTP, with no refit (``NEWSFEED_AUTO_REINDEX=false``).

On the corpus section 3 left in Redis (and its model), against a gunicorn server as shipped
(each article published here is deleted after its measurement: the corpus stays as it was).

- **publish to visible**: a reader whose first page is cached; an article in a category they
  follow is POSTed to /v1/articles; from the acknowledged POST, their first page is fetched
  until it lists the article. Every request opens a new connection, so the read lands on any
  worker, not the one that took the write.
- **cold build with a reading history**: readers who clicked 50 articles (POST /v1/events)
  get their first page: built in-process through the real FeedService (the build alone), and
  over HTTP for other readers (the build plus HTTP).

Alone: ``python -m bench.breaking [--quick]`` (its own Redis, corpus and model).
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import secrets
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api import create_app
from api.extensions import EXTENSION, Services
from api.tokens import issue_token
from feed import articles, subscriptions
from feed.demo import generate_articles
from feed.redis_server import RedisServer
from recommender.ranker import RankRequest

if TYPE_CHECKING:
    from bench.run import Bench

SECTION = "9. breaking news: publish to visible with no refit (HTTP), cold build with history"
SAMPLES = {False: 40, True: 20}  # articles published one by one, per corpus size
HISTORY = 50  # clicks per reader before their cold build
HISTORY_READERS = 30  # per way of measuring (in-process, HTTP)
RECENT = 5_000  # clicks go to the newest articles, as readers' do
VISIBLE_TARGET_MS = 1000.0
HISTORY_BUILD_TARGET_MS = 10.0
POLL_TIMEOUT_S = 10.0
# A worker loads the model on its first request (about 0.3 s at 100k articles): before the
# clock starts, as for a worker that has been serving a while.
WARM_READS = 20
POLL_PAUSE_S = 0.005  # between reads of a page that does not list the story yet


def breaking_news(bench: Bench, size: int) -> None:
    """Both measurements on the corpus in Redis now (``size`` articles, fitted)."""
    from bench.run import Gunicorn, http_get

    server = Gunicorn(
        f"breaking-{size // 1000}k", "wsgi:app", bench.service_env(bench.server.url), bench.tmp
    )
    with ExitStack() as stack:
        stack.callback(server.stop)
        server.start()
        bench.wait_ready(server.port)
        for _ in range(WARM_READS):  # new connections: every worker loads the model first
            http_get(server.port, "/readyz")
        visible, polls = _publish_to_visible(bench, server.port, size)
        history = _cold_with_history(bench, server.port, size)
    _report(bench, size, visible, polls, history)


def _publish_to_visible(bench: Bench, port: int, size: int) -> tuple[list[float], list[int]]:
    from bench.run import PAGE_LIMIT, follow_sets, http_post, log

    settings = bench.settings()
    admin = f"Bearer {issue_token(settings, 'bench-admin', admin=True)}"
    rng = random.Random(size)
    samples = SAMPLES[bench.profile.quick]
    readers = [f"breaking{size}-{n}" for n in range(samples)]
    follows = follow_sets(samples, rng)
    for reader, followed in zip(readers, follows, strict=True):
        subscriptions.replace(bench.r, reader, followed)
    visible: list[float] = []
    polls: list[int] = []
    for n, (reader, followed) in enumerate(zip(readers, follows, strict=True)):
        auth = {"Authorization": f"Bearer {issue_token(settings, reader)}"}
        path = f"/v1/users/{reader}/feed?limit={PAGE_LIMIT}"
        _page(port, path, auth)  # cached now: the write must make the next read rebuild
        story = _story(f"breaking{size}-{n}", rng.choice(followed), seed=n)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            http_post(
                conn, "/v1/articles", json.dumps({"articles": [story]}).encode(), admin, (200,)
            )
        finally:
            conn.close()
        acknowledged = time.perf_counter()
        for attempt in range(1, 10_000):
            listed = story["id"] in [item["id"] for item in _page(port, path, auth)]
            elapsed = time.perf_counter() - acknowledged
            if listed:
                visible.append(elapsed * 1000)
                polls.append(attempt)
                break
            if elapsed > POLL_TIMEOUT_S:
                raise RuntimeError(
                    f"{story['id']} not on {reader}'s first page after {elapsed:.1f}s"
                )
            time.sleep(POLL_PAUSE_S)
        # Each story competes with the corpus alone, not with the stories before it, and the
        # corpus keeps its size (section 8 reuses it).
        articles.delete(bench.r, story["id"])
    log(
        f"publish to visible at {size:,}: p50 {_percentile(visible, 50):.1f} ms, "
        f"p95 {_percentile(visible, 95):.1f} ms, most reads {max(polls)}"
    )
    return visible, polls


def _story(article_id: str, slug: str, seed: int) -> dict[str, Any]:
    """A big story of ``slug`` published now: the body of three demo articles of it, so that
    it ranks on the first page, as breaking news in a followed category should."""
    first, *more = generate_articles(3, seed=seed, categories=[slug], max_age_days=0.0)
    body = "\n".join(str(a["body"]) for a in (first, *more))
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    url = f"https://breaking.example.com/{article_id}"
    return {**first, "id": article_id, "url": url, "body": body, "published_at": now}


@dataclass(frozen=True)
class HistoryBuilds:
    built: list[float]  # ms, in-process FeedService.page (a miss)
    ranked: list[float]  # ms, the ranker alone for the same readers
    over_http: list[float]  # ms, other readers' first pages over HTTP (a miss)


def _cold_with_history(bench: Bench, port: int, size: int) -> HistoryBuilds:
    from bench.run import PAGE_LIMIT, TfidfRanker, follow_sets, http_post, log

    r = bench.r
    settings = bench.settings()
    recent = [i.decode() for i in r.zrevrange(articles.TIMELINE_KEY, 0, RECENT - 1)]
    rng = random.Random(size + 1)
    readers = [f"history{size}-{n}" for n in range(2 * HISTORY_READERS)]
    auth = {u: {"Authorization": f"Bearer {issue_token(settings, u)}"} for u in readers}
    follows = dict(zip(readers, follow_sets(len(readers), rng), strict=True))
    read = {reader: rng.sample(recent, HISTORY) for reader in readers}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for reader in readers:
            subscriptions.replace(r, reader, follows[reader])
            clicks = [
                {"type": "click", "user_id": reader, "article_id": i, "feed_id": "bench"}
                for i in read[reader]
            ]
            token = auth[reader]["Authorization"]
            body = json.dumps({"events": clicks}).encode()
            accepted = json.loads(http_post(conn, "/v1/events", body, token, (202,)))["accepted"]
            if accepted != HISTORY:
                raise RuntimeError(f"{reader}: {accepted} of {HISTORY} clicks accepted")
    finally:
        conn.close()

    app = create_app(
        {
            "redis_url": bench.server.url,
            "jwt_secret": bench.secret,
            "auto_reindex": False,
            "log_level": "warning",
        }
    )
    svc: Services = app.extensions[EXTENSION]
    ranker = TfidfRanker(half_life_hours=settings.freshness_half_life_hours)
    built: list[float] = []
    ranked: list[float] = []
    try:
        svc.feed.page(readers[-1], PAGE_LIMIT)  # loads the model (and its extension): apart
        for reader in readers[:HISTORY_READERS]:
            t0 = time.perf_counter()
            page = svc.feed.page(reader, PAGE_LIMIT)
            built.append((time.perf_counter() - t0) * 1000)
            if page.cache_hit or len(json.loads(page.body)["items"]) != PAGE_LIMIT:
                raise RuntimeError(f"{reader}'s page was not a full miss")
        loaded = svc.keeper.loaded
        assert loaded is not None
        for reader in readers[:HISTORY_READERS]:
            now = time.time()
            request = RankRequest(
                tuple(follows[reader]),
                now,
                settings.feed_size,
                exclude=frozenset(read[reader]),
                history=tuple((i, now) for i in read[reader]),
            )
            t0 = time.perf_counter()
            ranker.rank(loaded.model, request)
            ranked.append((time.perf_counter() - t0) * 1000)
    finally:
        svc.keeper.stop()
        svc.redis.close()
    over_http: list[float] = []
    for reader in readers[HISTORY_READERS:-1]:
        path = f"/v1/users/{reader}/feed?limit={PAGE_LIMIT}"
        t0 = time.perf_counter()
        cache = _page(port, path, auth[reader], header="X-Feed-Cache")
        over_http.append((time.perf_counter() - t0) * 1000)
        if cache != "miss":
            raise RuntimeError(f"{reader}'s first page was a {cache}")
    log(
        f"cold build with {HISTORY} clicks at {size:,}: in-process p50 "
        f"{_percentile(built, 50):.1f} ms (ranker {_percentile(ranked, 50):.1f} ms), "
        f"HTTP p50 {_percentile(over_http, 50):.1f} ms"
    )
    return HistoryBuilds(built, ranked, over_http)


def _page(port: int, path: str, headers: dict[str, str], header: str = "") -> Any:
    """A first page on a new connection: its items, or the value of ``header``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:300]!r}")
        return response.getheader(header) if header else json.loads(body)["items"]
    finally:
        conn.close()


def _percentile(values: Sequence[float], q: float) -> float:
    from bench.run import percentile

    return percentile(values, q)


def _report(
    bench: Bench,
    size: int,
    visible: list[float],
    polls: list[int],
    history: HistoryBuilds,
) -> None:
    label = f"{size // 1000}k corpus"
    target = f"< {VISIBLE_TARGET_MS:g} ms"
    note = f"{len(visible)} articles, one at a time; no refit"
    for q in (50, 95):
        value = _percentile(visible, q)
        bench.report.add(
            SECTION,
            f"{label}: publish to visible p{q}",
            value,
            "ms",
            target=target,
            ok=value < VISIBLE_TARGET_MS,
            note=note,
        )
    bench.report.add(
        SECTION,
        f"{label}: first pages read until visible, most",
        max(polls),
        "",
        target="1",
        ok=max(polls) == 1,
        note="1: the first read after the write lists it",
    )
    p50 = _percentile(history.built, 50)
    at_target = size >= 100_000
    bench.report.add(
        SECTION,
        f"{label}: cold build, {HISTORY}-click history p50",
        p50,
        "ms",
        target=f"<= {HISTORY_BUILD_TARGET_MS:g} ms" if at_target else "",
        ok=p50 <= HISTORY_BUILD_TARGET_MS if at_target else None,
        note=f"in-process FeedService.page, {len(history.built)} readers, 2-3 categories each",
    )
    bench.report.add(
        SECTION, f"{label}: cold build, history p99", _percentile(history.built, 99), "ms"
    )
    bench.report.add(
        SECTION,
        f"{label}: bare ranker, history p50",
        _percentile(history.ranked, 50),
        "ms",
        note="the same readers; the rest of a build is as in section 2",
    )
    bench.report.add(
        SECTION,
        f"{label}: cold first page with history over HTTP p50",
        _percentile(history.over_http, 50),
        "ms",
        note=f"{len(history.over_http)} other readers",
    )
    bench.report.details[f"breaking_{size}"] = {
        "publish_to_visible_ms": visible,
        "reads_until_visible": polls,
        "history_build_ms": history.built,
        "history_ranker_ms": history.ranked,
        "history_http_ms": history.over_http,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """This section alone, on a corpus of each size loaded in-process and fitted."""
    from bench.run import (
        INGEST_BATCH,
        PROFILES,
        Bench,
        Report,
        log,
        machine_info,
        pick_load_generator,
        to_article,
    )

    parser = argparse.ArgumentParser(prog="python -m bench.breaking")
    parser.add_argument("--quick", action="store_true", help="10k corpus only, fewer samples")
    args = parser.parse_args(argv)
    profile = PROFILES[args.quick]
    load_name, load = pick_load_generator("auto")
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="newsfeed-bench-")))
        server = stack.enter_context(RedisServer(tmp / "redis", appendonly=False))
        report = Report(
            datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
            "quick" if profile.quick else "full",
            machine_info(server, load_name),
        )
        bench = Bench(profile, report, server, secrets.token_urlsafe(32), tmp, load)
        for size in profile.cold_sizes:
            r = bench.fresh_db()
            wire = bench.corpus(size, f"bench{size}")
            for start in range(0, size, INGEST_BATCH):
                chunk = wire[start : start + INGEST_BATCH]
                articles.upsert(r, [(i, to_article(a)) for i, a in enumerate(chunk)])
            log(f"{size:,} articles stored")
            bench.time_reindex(r, size)
            breaking_news(bench, size)
    report.sort()
    print(report.render())


if __name__ == "__main__":
    main()
