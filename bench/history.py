"""Bench section 9, second half: cold first pages of readers with a 50-click reading history."""

from __future__ import annotations

import http.client
import json
import random
import time
from dataclasses import dataclass

import redis

from api.extensions import EXTENSION
from bench.common import HOST, PAGE_LIMIT, first_page, follow_sets, http_post, log, percentile
from bench.context import Bench
from feed.corpus import articles
from feed.readers import subscriptions
from feed.readers.tokens import issue_token
from feed.services import Services
from recommender.ranker import RankRequest
from recommender.tfidf import TfidfRanker

HISTORY = 50  # clicks per reader before their cold build
HISTORY_READERS = 30  # per way of measuring (in-process, HTTP)
RECENT = 5_000  # clicks go to the newest articles, as readers' do


@dataclass(frozen=True)
class HistoryBuilds:
    built: list[float]  # ms, in-process FeedService.page (a miss)
    ranked: list[float]  # ms, the ranker alone for the same readers
    over_http: list[float]  # ms, other readers' first pages over HTTP (a miss)


@dataclass(frozen=True)
class Readers:
    """Readers with follows and HISTORY clicks each: the first HISTORY_READERS are built
    in-process, the rest but the last over HTTP; the last loads the model, untimed."""

    names: list[str]
    auth: dict[str, dict[str, str]]  # reader -> request headers
    follows: dict[str, list[str]]
    read: dict[str, list[str]]  # reader -> clicked article ids


def cold_with_history(bench: Bench, port: int, size: int) -> HistoryBuilds:
    """Both ways of measuring, on the corpus in Redis (``size`` articles) and a server on
    ``port``."""
    readers = _readers(bench, size)
    _click(bench.r, port, readers)
    built, ranked = _in_process(bench, readers)
    over_http: list[float] = []
    for reader in readers.names[HISTORY_READERS:-1]:
        path = f"/v1/users/{reader}/feed?limit={PAGE_LIMIT}"
        t0 = time.perf_counter()
        cache = first_page(port, path, readers.auth[reader], header="X-Feed-Cache")
        over_http.append((time.perf_counter() - t0) * 1000)
        if cache != "miss":
            raise RuntimeError(f"{reader}'s first page was a {cache}")
    log(
        f"cold build with {HISTORY} clicks at {size:,}: in-process p50 "
        f"{percentile(built, 50):.1f} ms (ranker {percentile(ranked, 50):.1f} ms), "
        f"HTTP p50 {percentile(over_http, 50):.1f} ms"
    )
    return HistoryBuilds(built, ranked, over_http)


def _readers(bench: Bench, size: int) -> Readers:
    settings = bench.settings()
    recent = [i.decode() for i in bench.r.zrevrange(articles.TIMELINE_KEY, 0, RECENT - 1)]
    rng = random.Random(size + 1)
    names = [f"history{size}-{n}" for n in range(2 * HISTORY_READERS)]
    auth = {u: {"Authorization": f"Bearer {issue_token(settings, u)}"} for u in names}
    follows = dict(zip(names, follow_sets(len(names), rng), strict=True))
    read = {reader: rng.sample(recent, HISTORY) for reader in names}
    return Readers(names, auth, follows, read)


def _click(r: redis.Redis, port: int, readers: Readers) -> None:
    """Each reader follows their categories and clicks their articles (POST /v1/events)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        for reader in readers.names:
            subscriptions.replace(r, reader, readers.follows[reader])
            clicks = [
                {"type": "click", "user_id": reader, "article_id": i, "feed_id": "bench"}
                for i in readers.read[reader]
            ]
            token = readers.auth[reader]["Authorization"]
            body = json.dumps({"events": clicks}).encode()
            accepted = json.loads(http_post(conn, "/v1/events", body, token, (202,)))["accepted"]
            if accepted != HISTORY:
                raise RuntimeError(f"{reader}: {accepted} of {HISTORY} clicks accepted")
    finally:
        conn.close()


def _in_process(bench: Bench, readers: Readers) -> tuple[list[float], list[float]]:
    """Milliseconds of FeedService.page (misses) and of the bare ranker, per reader."""
    settings = bench.settings()
    with bench.app() as app:
        svc: Services = app.extensions[EXTENSION]
        ranker = TfidfRanker(half_life_hours=settings.freshness_half_life_hours)
        timed = readers.names[:HISTORY_READERS]
        built: list[float] = []
        ranked: list[float] = []
        svc.feed.page(readers.names[-1], PAGE_LIMIT)  # loads the model (and its extension)
        for reader in timed:
            t0 = time.perf_counter()
            page = svc.feed.page(reader, PAGE_LIMIT)
            built.append((time.perf_counter() - t0) * 1000)
            if page.cache_hit or len(json.loads(page.body)["items"]) != PAGE_LIMIT:
                raise RuntimeError(f"{reader}'s page was not a full miss")
        loaded = svc.keeper.loaded
        assert loaded is not None
        for reader in timed:
            now = time.time()
            request = RankRequest(
                tuple(readers.follows[reader]),
                now,
                settings.feed_size,
                exclude=frozenset(readers.read[reader]),
                history=tuple((i, now) for i in readers.read[reader]),
            )
            t0 = time.perf_counter()
            ranker.rank(loaded.model, request)
            ranked.append((time.perf_counter() - t0) * 1000)
    return built, ranked
