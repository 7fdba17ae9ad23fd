"""Bench sections 2-4 in-process: upsert rate, reindex time and cold feed builds per corpus size."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass

from api.extensions import EXTENSION
from bench.common import INGEST_BATCH, PAGE_LIMIT, follow_sets, log, median, percentile, to_article
from bench.context import Bench
from feed.corpus import articles
from feed.readers import subscriptions
from feed.services import Services
from recommender.ranker import RankRequest
from recommender.tfidf import TfidfRanker

COLD_SECTION = "2. cold feed build (in-process FeedService.page, limit 20)"
REINDEX_SECTION = "4. reindex (feed.model.reindex.reindex)"
COLD_P50_TARGET_MS = 20.0
REINDEX_100K_TARGET_S = 60.0
TARGET_SIZE = 100_000  # the targets hold for this corpus (skipped by --quick)


def in_process(bench: Bench, size: int) -> None:
    """A fresh corpus of ``size`` upserted batch by batch (timed), reindexed, then cold feeds."""
    r = bench.fresh_db()
    wire = bench.corpus(size, f"bench{size}")
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
    bench.report.add(
        "3. ingest",
        f"in-process upsert, {size // 1000}k corpus",
        median(batch_rates),
        "art/s",
        note=f"median of {len(batch_rates)} batches of {INGEST_BATCH}",
    )
    bench.report.details[f"ingest_inprocess_{size}_batch_rates"] = batch_rates
    bench.time_reindex(r, size)
    cold_feeds(bench, size)


@dataclass(frozen=True)
class ColdTimes:
    """Milliseconds per page of the same new readers."""

    first: float  # the first miss in a process: loads the model from Redis
    cold: list[float]  # their first pages (misses)
    warm: list[float]  # the same pages again (hits)
    ranked: list[float]  # the bare ranker for their follows


def cold_feeds(bench: Bench, size: int) -> None:
    with bench.app() as app:
        times = _measure(app.extensions[EXTENSION], size, bench.profile.cold_users)
    _report_cold(bench, size, times)


def _measure(svc: Services, size: int, users: int) -> ColdTimes:
    rng = random.Random(size)
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
    return ColdTimes(first_ms, cold, warm, ranked)


def _report_cold(bench: Bench, size: int, times: ColdTimes) -> None:
    report = bench.report
    label = f"{size // 1000}k corpus"
    p50 = percentile(times.cold, 50)
    at_target = size >= TARGET_SIZE
    report.add(
        COLD_SECTION,
        f"{label}: cold page p50",
        p50,
        "ms",
        target=f"< {COLD_P50_TARGET_MS:g} ms" if at_target else "",
        ok=(p50 < COLD_P50_TARGET_MS) if at_target else None,
        note=f"{len(times.cold)} new users, 2-3 categories each",
    )
    report.add(COLD_SECTION, f"{label}: cold page p99", percentile(times.cold, 99), "ms")
    report.add(COLD_SECTION, f"{label}: bare ranker p50", percentile(times.ranked, 50), "ms")
    report.add(COLD_SECTION, f"{label}: bare ranker p99", percentile(times.ranked, 99), "ms")
    report.add(
        COLD_SECTION,
        f"{label}: cold page minus ranker",
        p50 - percentile(times.ranked, 50),
        "ms",
        note="p50 difference: Redis round trips, reasons, cache store, render",
    )
    report.add(
        COLD_SECTION,
        f"{label}: cached page p50",
        percentile(times.warm, 50),
        "ms",
        note="same users",
    )
    report.add(
        COLD_SECTION,
        f"{label}: first miss in a process",
        times.first,
        "ms",
        note="includes loading the model from Redis",
    )
    report.details[f"cold_{size}"] = {
        "cold_ms": times.cold,
        "warm_ms": times.warm,
        "ranker_ms": times.ranked,
        "first_ms": times.first,
    }


def report_reindex(bench: Bench) -> None:
    """Section 4: the median of every reindex the run timed (Bench.time_reindex), per size."""
    for size in sorted(bench.reindex_samples):
        samples = bench.reindex_samples[size]
        total = median([s.read_seconds + s.fit_seconds + s.store_seconds for s in samples])
        label = f"{size // 1000}k articles"
        at_target = size >= TARGET_SIZE
        bench.report.add(
            REINDEX_SECTION,
            f"{label}: total",
            total,
            "s",
            target=f"< {REINDEX_100K_TARGET_S:g} s" if at_target else "",
            ok=total < REINDEX_100K_TARGET_S if at_target else None,
            note=f"median of {len(samples)}",
        )
        for part in ("read", "fit", "store"):
            value = median([getattr(s, f"{part}_seconds") for s in samples])
            bench.report.add(REINDEX_SECTION, f"{label}: {part}", value, "s")
        bench.report.details[f"reindex_{size}"] = [
            {
                "read_seconds": s.read_seconds,
                "fit_seconds": s.fit_seconds,
                "store_seconds": s.store_seconds,
                "articles": s.meta.articles,
            }
            for s in samples
        ]
