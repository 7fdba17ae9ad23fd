"""The report's freeze, worker, model-lag and published-article figures: text and JSON."""

from __future__ import annotations

from typing import Any

from bench.common import percentile
from bench.soak.common import LIVE_BATCH, LIVE_EVERY_S
from bench.soak.resilience import Resilience, longest, p99
from bench.soak.summary import Summary
from bench.soak.tables import table


def lines(r: Resilience) -> list[str]:
    """The figures' section of the text report."""
    f, a, kill = r.freeze, r.articles, r.kill
    statuses = ", ".join(f"{k} {v}" for k, v in f.statuses.most_common(6)) or "none"
    posts = ", ".join(f"{k} {v}" for k, v in a.posts.most_common()) or "none"
    behind = r.behind
    rows = [
        ["requests sent while frozen", f"{f.sent:,} ({statuses})"],
        ["  time to a 503: longest, p99", f"{longest(f.to_503, 3)}, {p99(f.to_503, 3)}"],
        ["worker killed at", f"+{kill.at:.2f} s" if kill.happened else "not killed"],
        ["  a fit running (reindex lock held)", f"{kill.fit_running} (waited {kill.waited:.2f} s)"],
        ["  model covers the corpus of the kill", _secs(r.kill_covered)],
        ["unplanned worker deaths", str(len(r.deaths))],
        ["model lag: most corpus versions behind", str(r.max_lag)],
        ["  longest stretch behind", f"{behind.seconds:.1f} s" if behind else "0 s"],
        ["articles acknowledged", f"{a.acked} (POSTs: {posts})"],
        ["  in a feed: longest, p99 from ack", f"{longest(a.from_ack)}, {p99(a.from_ack)}"],
        ["  in a feed: longest from Redis back", longest(a.from_back)],
        ["  in the model: longest", longest(a.to_model)],
        ["  never in a feed (still stored / lost)", f"{len(a.never_seen)} / {a.lost}"],
    ]
    return [
        f"freeze, worker and published articles (a batch of {LIVE_BATCH} every "
        f"{LIVE_EVERY_S:g} s; watched on followers' feeds)",
        table(["figure", "value"], rows, "ll"),
    ]


def _secs(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def detail_lines(s: Summary, r: Resilience) -> list[str]:
    """Published articles that never reached a feed, refusals, and the publisher's errors."""
    lines: list[str] = []
    unseen = r.articles.never_seen
    if unseen:
        lines += ["", f"acknowledged articles never seen in a feed: {len(unseen)} (first 10)"]
        lines += [
            f"  {a.id} ({a.slug}) acknowledged at +{a.acked_at:.2f}s; "
            + {True: "still stored", False: "LOST (404)", None: "unreadable"}[a.stored]
            for a in unseen[:10]
        ]
    if r.articles.refused:
        lines += ["", "published articles refused (first 5)"]
        lines += [f"  {x}" for x in r.articles.refused[:5]]
    crashes = s.soak.live.crashes
    if crashes:
        lines += ["", f"ARTICLE PUBLISHER ERRORS: {len(crashes)} (the first)", crashes[0]]
    return lines


def as_json(r: Resilience) -> dict[str, Any]:
    f, a = r.freeze, r.articles
    return {
        "freeze": {
            "requests_sent_while_frozen": f.sent,
            "statuses": dict(f.statuses),
            "answered_503": len(f.to_503),
            "longest_to_503_s": max(f.to_503) if f.to_503 else None,
            "p99_to_503_s": percentile(f.to_503, 99) if f.to_503 else None,
            "bound_s": f.bound,
            "ready_after_sigcont_s": f.resumed,
        },
        "worker": {
            "deaths": [d.__dict__ | {"during": where} for d, where in r.deaths],
            "kill": r.kill.__dict__,
            "model_covered_after_kill_s": r.kill_covered,
            "forks_left_running": r.orphans,
        },
        "model_lag": {
            "max_versions": r.max_lag,
            "longest_behind": r.behind.__dict__ | {"seconds": r.behind.seconds}
            if r.behind
            else None,
        },
        "articles": {
            "acknowledged": a.acked,
            "posts": dict(a.posts),
            "refused": a.refused[:50],
            "longest_to_feed_from_ack_s": max(a.from_ack) if a.from_ack else None,
            "longest_to_feed_from_redis_back_s": max(a.from_back) if a.from_back else None,
            "p99_to_feed_s": percentile(a.from_back, 99) if a.from_back else None,
            "longest_to_model_s": max(a.to_model) if a.to_model else None,
            "never_covered_by_model": a.uncovered,
            "never_in_a_feed": [x.__dict__ for x in a.never_seen[:100]],
            "lost": a.lost,
        },
    }
