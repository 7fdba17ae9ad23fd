"""Exposures per variant over time: counts per hour kept when a page is served (never by
scanning the event stream), read as hourly or daily series for the console's chart.

Each counter shard of an experiment (feed.experiments.counts_key: the user's shard) has a
hash beside it in the same slot, with fields "<hour>:<variant>:pages" and
"<hour>:<variant>:users", <hour> the UTC hour's start in epoch seconds: the pages served in
that hour, and the users first exposed in it (so a variant's users sum to the results').
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import redis

from feed.experiments.assignment import Experiment

HOURLY_KEY = "nf:exp:{%s:%d}:hourly"
HOUR_SECONDS = 3600
DAY_SECONDS = 86_400
INTERVALS = {"hour": HOUR_SECONDS, "day": DAY_SECONDS}
# A chart of more points than this is unreadable, and the answer would grow with the
# experiment's age: the series is the latest MAX_BUCKETS (31 days of hours; two years of days).
MAX_BUCKETS = 744


@dataclass(frozen=True)
class VariantSeries:
    name: str
    pages: tuple[int, ...]  # pages served per bucket
    users: tuple[int, ...]  # users first exposed per bucket


@dataclass(frozen=True)
class ExposureSeries:
    experiment: str
    interval: str  # "hour" or "day" (UTC days)
    starts: tuple[float, ...]  # each bucket's start, epoch seconds, oldest first
    variants: tuple[VariantSeries, ...]  # in the experiment's order, control first


def hour_of(now: float) -> int:
    return int(now // HOUR_SECONDS) * HOUR_SECONDS


def field(now: float, variant: str, counter: str) -> str:
    return f"{hour_of(now)}:{variant}:{counter}"


def series(
    r: redis.Redis,
    experiment: Experiment,
    shards: int,
    interval: str = "hour",
    now: float | None = None,
) -> ExposureSeries:
    """The experiment's exposures per variant, one bucket per interval from its start (or
    its first exposure, for a draft) to its stop or now, empty buckets included."""
    step = INTERVALS[interval]
    now = time.time() if now is None else now
    pipe = r.pipeline(transaction=False)
    for shard in range(shards):
        pipe.hgetall(HOURLY_KEY % (experiment.name, shard))
    totals: dict[tuple[int, str, str], int] = defaultdict(int)
    for raw in pipe.execute():
        for key, value in raw.items():
            hour, variant, counter = key.decode().split(":", 2)
            start = int(hour) // step * step
            totals[start, variant, counter] += int(value)
    seen = [start for start, _, _ in totals]
    began = experiment.started_at if experiment.started_at is not None else min(seen, default=now)
    ended = experiment.stopped_at if experiment.stopped_at is not None else now
    first = int(min([began, *seen]) // step) * step
    last = int(max([ended, *seen]) // step) * step
    first = max(first, last - (MAX_BUCKETS - 1) * step)
    starts = range(first, last + step, step)
    return ExposureSeries(
        experiment=experiment.name,
        interval=interval,
        starts=tuple(float(s) for s in starts),
        variants=tuple(
            VariantSeries(
                name=v.name,
                pages=tuple(totals.get((s, v.name, "pages"), 0) for s in starts),
                users=tuple(totals.get((s, v.name, "users"), 0) for s in starts),
            )
            for v in experiment.variants
        ),
    )
