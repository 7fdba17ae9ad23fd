"""Bench section 9: breaking news over HTTP, with no refit (``NEWSFEED_AUTO_REINDEX=false``).

On the corpus section 3 left in Redis (and its model), against a gunicorn server as shipped
(each article published here is deleted after its measurement: the corpus stays as it was).

- **publish to visible**: a reader whose first page is cached; an article in a category they
  follow is POSTed to /v1/articles; from the acknowledged POST, their first page is fetched
  until it lists the article. Every request opens a new connection, so the read lands on any
  worker, not the one that took the write.
- **cold build with a reading history** (``bench/history.py``): readers who clicked 50
  articles (POST /v1/events) get their first page: built in-process through the real
  FeedService (the build alone), and over HTTP for other readers (the build plus HTTP).

Alone: ``python -m bench.breaking [--quick]`` (its own Redis, corpus and model).
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

from bench.common import (
    HOST,
    PAGE_LIMIT,
    PROFILES,
    first_page,
    follow_sets,
    http_get,
    http_post,
    log,
    percentile,
    store_corpus,
)
from bench.context import Bench, standalone
from bench.history import HISTORY, HistoryBuilds, cold_with_history
from bench.servers import Gunicorn
from devtools.demo import generate_articles
from feed.corpus import articles
from feed.readers import subscriptions
from feed.readers.tokens import issue_token

SECTION = "9. breaking news: publish to visible with no refit (HTTP), cold build with history"
SAMPLES = {False: 40, True: 20}  # articles published one by one, per corpus size
VISIBLE_TARGET_MS = 1000.0
HISTORY_BUILD_TARGET_MS = 10.0
POLL_TIMEOUT_S = 10.0
# A worker loads the model on its first request (about 0.3 s at 100k articles): before the
# clock starts, as for a worker that has been serving a while.
WARM_READS = 20
POLL_PAUSE_S = 0.005  # between reads of a page that does not list the story yet


def breaking_news(bench: Bench, size: int) -> None:
    """Both measurements on the corpus in Redis now (``size`` articles, fitted)."""
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
        history = cold_with_history(bench, server.port, size)
    _report(bench, size, visible, polls, history)


def _publish_to_visible(bench: Bench, port: int, size: int) -> tuple[list[float], list[int]]:
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
        first_page(port, path, auth)  # cached now: the write must make the next read rebuild
        story = _story(f"breaking{size}-{n}", rng.choice(followed), seed=n)
        _publish(port, admin, story)
        elapsed, attempts = _until_listed(port, path, auth, story["id"], reader)
        visible.append(elapsed * 1000)
        polls.append(attempts)
        # Each story competes with the corpus alone, not with the stories before it, and the
        # corpus keeps its size (section 8 reuses it).
        articles.delete(bench.r, story["id"])
    log(
        f"publish to visible at {size:,}: p50 {percentile(visible, 50):.1f} ms, "
        f"p95 {percentile(visible, 95):.1f} ms, most reads {max(polls)}"
    )
    return visible, polls


def _publish(port: int, admin: str, story: dict[str, Any]) -> None:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        http_post(conn, "/v1/articles", json.dumps({"articles": [story]}).encode(), admin, (200,))
    finally:
        conn.close()


def _until_listed(
    port: int, path: str, auth: dict[str, str], story_id: str, reader: str
) -> tuple[float, int]:
    """Seconds from now until the first page lists ``story_id``, and the reads it took."""
    acknowledged = time.perf_counter()
    for attempt in range(1, 10_000):
        listed = story_id in [item["id"] for item in first_page(port, path, auth)]
        elapsed = time.perf_counter() - acknowledged
        if listed:
            return elapsed, attempt
        if elapsed > POLL_TIMEOUT_S:
            raise RuntimeError(f"{story_id} not on {reader}'s first page after {elapsed:.1f}s")
        time.sleep(POLL_PAUSE_S)
    raise RuntimeError(f"{story_id} not on {reader}'s first page after 10,000 reads")


def _story(article_id: str, slug: str, seed: int) -> dict[str, Any]:
    """A big story of ``slug`` published now: the body of three demo articles of it, so that
    it ranks on the first page, as breaking news in a followed category should."""
    first, *more = generate_articles(3, seed=seed, categories=[slug], max_age_days=0.0)
    body = "\n".join(str(a["body"]) for a in (first, *more))
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    url = f"https://breaking.example.com/{article_id}"
    return {**first, "id": article_id, "url": url, "body": body, "published_at": now}


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
        value = percentile(visible, q)
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
    _report_history(bench, label, size, history)
    bench.report.details[f"breaking_{size}"] = {
        "publish_to_visible_ms": visible,
        "reads_until_visible": polls,
        "history_build_ms": history.built,
        "history_ranker_ms": history.ranked,
        "history_http_ms": history.over_http,
    }


def _report_history(bench: Bench, label: str, size: int, history: HistoryBuilds) -> None:
    p50 = percentile(history.built, 50)
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
        SECTION, f"{label}: cold build, history p99", percentile(history.built, 99), "ms"
    )
    bench.report.add(
        SECTION,
        f"{label}: bare ranker, history p50",
        percentile(history.ranked, 50),
        "ms",
        note="the same readers; the rest of a build is as in section 2",
    )
    bench.report.add(
        SECTION,
        f"{label}: cold first page with history over HTTP p50",
        percentile(history.over_http, 50),
        "ms",
        note=f"{len(history.over_http)} other readers",
    )


def main(argv: Sequence[str] | None = None) -> None:
    """This section alone, on a corpus of each size loaded in-process and fitted."""
    parser = argparse.ArgumentParser(prog="python -m bench.breaking")
    parser.add_argument("--quick", action="store_true", help="10k corpus only, fewer samples")
    args = parser.parse_args(argv)
    with standalone(PROFILES[args.quick]) as bench:
        for size in bench.profile.cold_sizes:
            r = bench.fresh_db()
            store_corpus(r, bench.corpus(size, f"bench{size}"))
            log(f"{size:,} articles stored")
            bench.time_reindex(r, size)
            breaking_news(bench, size)


if __name__ == "__main__":
    main()
