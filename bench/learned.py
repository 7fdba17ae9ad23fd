"""Bench section 11: the learned ranker's training time on a million impressions, and its
cold feed builds next to tfidf's on the same corpus.

Training reads a synthetic event stream written straight into Redis (untimed): readers with
2-3 follows and growing histories, shown pages of ``PAGE`` of the newest articles, clicking
by position and by a hidden appeal per article. The timed part is exactly what
`newsfeed train` runs (feed.model.learning.train_and_publish): read the stream, rebuild the
pages and histories, compute the features, fit, judge against tfidf, refit, publish.

Cold builds: in-process FeedService.page for new readers (each a miss), one service ranking
with tfidf and one with the learned ranker and the model training published, alternating
readers so both see the same machine.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time

import redis

from api.extensions import EXTENSION
from bench.common import PAGE_LIMIT, follow_sets, log, percentile
from bench.context import Bench
from feed.corpus import articles
from feed.model import learned_store
from feed.model.learning import TrainingOutcome, serving_model, train_and_publish
from feed.readers import events, subscriptions
from feed.readers.popularity import Popularity
from feed.services import Services
from feed.serving.cursor import CursorCodec
from feed.serving.service import FeedService
from feed.serving.variants import Variants
from recommender.features import FEATURES, POSITION_FEATURE
from recommender.learned import LearnedRanker
from recommender.linear import LinearModel
from recommender.tfidf import TfidfRanker

SECTION = "11. learned ranker: training and cold builds (in-process)"
IMPRESSIONS = 1_000_000
QUICK_IMPRESSIONS = 100_000  # --quick
PAGE = 20
READERS = 20_000
RECENT = 20_000  # pages show the newest articles, as feeds do
WRITE_BATCH = 10_000
TRAIN_TARGET_S = 60.0
COLD_RATIO_TARGET = 2.0
TARGET_SIZE = 100_000


def learned_section(bench: Bench, size: int) -> None:
    """Both measurements on the corpus and model the cold section left in Redis."""
    r = bench.r
    impressions = QUICK_IMPRESSIONS if bench.profile.quick else IMPRESSIONS
    seconds, outcome = _training(bench, r, size, impressions)
    model = (
        outcome.training.model
        if outcome.training is not None and outcome.training.model is not None
        else None
    )
    if outcome.version is None:
        # The gate kept it out: time the cold builds with a model of the same shape anyway.
        model = _every_feature()
        learned_store.publish(r, model)
    at_target = size >= TARGET_SIZE and impressions >= IMPRESSIONS
    label = f"{size // 1000}k corpus"
    training = outcome.training
    bench.report.add(
        SECTION,
        f"{label}: train on {impressions // 1000}k impressions",
        seconds,
        "s",
        target=f"<= {TRAIN_TARGET_S:g} s" if at_target else "",
        ok=seconds <= TRAIN_TARGET_S if at_target else None,
        note=(
            f"{outcome.events:,} events, {training.pages:,} pages, {training.clicks:,} clicks; "
            f"published: {outcome.version is not None}"
            if training
            else outcome.reason
        ),
    )
    tfidf_ms, learned_ms = _cold(bench, size)
    ratio = percentile(learned_ms, 50) / percentile(tfidf_ms, 50)
    bench.report.add(SECTION, f"{label}: tfidf cold page p50", percentile(tfidf_ms, 50), "ms")
    bench.report.add(SECTION, f"{label}: learned cold page p50", percentile(learned_ms, 50), "ms")
    bench.report.add(
        SECTION,
        f"{label}: learned / tfidf cold p50",
        ratio,
        "x",
        target=f"<= {COLD_RATIO_TARGET:g}x" if size >= TARGET_SIZE else "",
        ok=ratio <= COLD_RATIO_TARGET if size >= TARGET_SIZE else None,
        note=f"{len(learned_ms)} new readers each, 2-3 follows, no history",
    )
    bench.report.details[f"learned_{size}"] = {
        "train_seconds": seconds,
        "outcome": outcome.as_json(),
        "tfidf_cold_ms": tfidf_ms,
        "learned_cold_ms": learned_ms,
        "weights": model.weights() if model else None,
    }


def _training(
    bench: Bench, r: redis.Redis, size: int, impressions: int
) -> tuple[float, TrainingOutcome]:
    _write_stream(bench, r, size, impressions)
    settings = bench.settings()
    model = serving_model(r, settings.live_window_days)
    log(f"training on {impressions:,} impressions ({size:,} articles)")
    t0 = time.perf_counter()
    outcome = train_and_publish(
        r, model, TfidfRanker(half_life_hours=settings.freshness_half_life_hours)
    )
    seconds = time.perf_counter() - t0
    log(f"trained in {seconds:.1f} s: {outcome.reason or 'published'}")
    return seconds, outcome


def _write_stream(bench: Bench, r: redis.Redis, size: int, impressions: int) -> None:
    """``impressions`` impressions (and their clicks and reads) in the event stream, one page of
    PAGE at a time, readers in turn; an hour of traffic ending now."""
    recent = [i.decode() for i in r.zrevrange(articles.TIMELINE_KEY, 0, RECENT - 1)]
    rng = random.Random(size)
    readers = [f"learn{size}-{n}" for n in range(READERS)]
    for reader, followed in zip(readers, follow_sets(READERS, rng), strict=True):
        subscriptions.replace(r, reader, followed)
    appeal = {a: hashlib.sha1(a.encode()).digest()[0] / 255.0 for a in recent}
    popularity = Popularity(r, bench.settings().popularity_half_life_hours)
    pages = impressions // PAGE
    start = time.time() - 3600.0
    t0 = time.perf_counter()
    pipe = r.pipeline(transaction=False)
    queued = 0
    # The decayed counters the learned ranker reads at every build, as the events would leave
    # them (feed.readers.popularity): most of the newest articles have some.
    counted: list[tuple[str, str, float]] = []
    for p in range(pages):
        reader = readers[p % READERS]
        when = start + 3600.0 * p / pages
        feed_id = f"bench-{p}"
        for position, article in enumerate(rng.sample(recent, PAGE)):
            fields = {
                "type": "impression",
                "user": reader,
                "article": article,
                "ts": f"{when:.3f}",
                "feed_id": feed_id,
                "position": str(position),
            }
            pipe.xadd(events.STREAM_KEY, fields)
            counted.append(("impression", article, when))
            logit = -3.0 + 2.0 * appeal[article] - 0.5 * math.log1p(position)
            if rng.random() < 1.0 / (1.0 + math.exp(-logit)):
                pipe.xadd(events.STREAM_KEY, {**fields, "type": "click"})
                counted.append(("click", article, when))
                queued += 1
            queued += 1
            if queued >= WRITE_BATCH:
                pipe.execute()
                popularity.record(counted, when)
                queued = 0
                counted = []
    pipe.execute()
    popularity.record(counted, time.time())
    log(f"wrote {r.xlen(events.STREAM_KEY):,} events in {time.perf_counter() - t0:.0f} s")


def _every_feature() -> LinearModel:
    names = (*FEATURES, POSITION_FEATURE)
    return LinearModel(names, (0.5,) * len(names), (0.0,) * len(names), (1.0,) * len(names), 0.0)


def _cold(bench: Bench, size: int) -> tuple[list[float], list[float]]:
    with bench.app() as app:
        svc: Services = app.extensions[EXTENSION]
        settings = svc.settings
        # The same service with the learned ranker as its default (as a variant would have it).
        learned_feed = FeedService(
            svc.redis,
            svc.keeper,
            Variants(svc.redis, LearnedRanker(half_life_hours=settings.freshness_half_life_hours)),
            Popularity(svc.redis, settings.popularity_half_life_hours),
            CursorCodec(settings.cursor_secret or settings.jwt_secret),
            feed_size=settings.feed_size,
            feed_ttl=settings.feed_ttl_seconds,
            cursor_ttl=settings.cursor_ttl_seconds,
            learned=learned_store.LearnedModels(svc.redis, settings.model_poll_seconds),
        )
        users = bench.profile.cold_users
        rng = random.Random(size + 7)
        follows = follow_sets(2 * users + 2, rng)
        names = [f"learncold{size}-{n}" for n in range(2 * users + 2)]
        for name, followed in zip(names, follows, strict=True):
            subscriptions.replace(svc.redis, name, followed)
        timings: dict[str, list[float]] = {"tfidf": [], "learned": []}
        svc.feed.page(names[-1], PAGE_LIMIT)  # loads the model, untimed
        learned_feed.page(names[-2], PAGE_LIMIT)  # and the learned model
        for n in range(users):
            for kind, feed in (("tfidf", svc.feed), ("learned", learned_feed)):
                name = names[2 * n + (kind == "learned")]
                t0 = time.perf_counter()
                page = feed.page(name, PAGE_LIMIT)
                timings[kind].append((time.perf_counter() - t0) * 1000)
                if page.cache_hit or len(json.loads(page.body)["items"]) != PAGE_LIMIT:
                    raise RuntimeError(f"{kind} cold page for {name} was not a full miss")
    log(
        f"cold pages at {size:,}: tfidf p50 {percentile(timings['tfidf'], 50):.1f} ms, "
        f"learned p50 {percentile(timings['learned'], 50):.1f} ms"
    )
    return timings["tfidf"], timings["learned"]
