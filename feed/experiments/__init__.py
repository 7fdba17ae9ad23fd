"""A/B experiments on rankers: stored definitions, start/stop, counters and results.

Definitions and the pure bucketing live in :mod:`feed.experiments.assignment` (re-exported here). An
experiment is an immutable record: created as a draft, started once, stopped once; to change
one, stop it and create another under a new name.

Counters are kept when things happen, never by scanning the event stream: a served feed page
records an exposure, and impressions and clicks of exposed users update per-user counts and
the per-variant sums the delta method needs (Σx, Σy, Σx², Σy², Σxy with x = clicks and
y = impressions of one user). They are derived data: the stream stays the record.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import NamedTuple

import redis

from feed.exceptions import ExperimentConflict, ExperimentNotFound, WriteConflict
from feed.experiments import buffer as _buffer
from feed.experiments import exposures
from feed.experiments.assignment import (
    BUCKETS,
    Assignment,
    Experiment,
    Variant,
    assign,
    bucket,
    check,
    dump_running,
    parse_running,
)
from feed.experiments.exposures import ExposureSeries
from feed.experiments.results import CONFIDENCE, ExperimentResults, VariantResult, summarise
from feed.storage import locks
from feed.storage.connection import slot_eval

__all__ = [
    "BUCKETS",
    "Assignment",
    "Experiment",
    "ExperimentResults",
    "Exposure",
    "ExposureSeries",
    "Variant",
    "VariantResult",
    "add_counts",
    "assign",
    "bucket",
    "counts",
    "create",
    "expose",
    "exposure_series",
    "get",
    "list_all",
    "parse_running",
    "record_events",
    "record_exposure",
    "results",
    "running",
    "start",
    "stop",
]

log = logging.getLogger(__name__)

# A status change: the stored experiment and the other running ones -> the changed record.
_Change = Callable[[Experiment, list[Experiment]], Experiment]

DEFS_KEY = "nf:{corpus}:experiments"  # hash name -> JSON definition with status and timestamps
# The running definitions as one compact JSON list, read with the versions on every feed
# request; rewritten in the same transaction as every start and stop.
RUNNING_KEY = "nf:{corpus}:experiments:running"
# One experiment's counters, split into COUNT_SHARDS hashes by user so that no single key (and
# cluster slot) takes every exposure; fields are "<variant>:<counter>", summed when read.
COUNTS_KEY = "nf:exp:{%s:%d}:counts"
COUNT_SHARDS = 16
# One user's clicks (x) and impressions (y) in one experiment, in the user's slot.
USER_KEY = "nf:{u:%s}:exp:%s"
# A user's counts must outlive any experiment they are in: if the key expired mid-experiment
# the user would be counted again as a new exposed user with fresh sums. Refreshed on touch.
USER_TTL_SECONDS = 90 * 86_400
MAX_RETRIES = 10  # optimistic start/stop transactions retried on concurrent admin writes

COUNTERS = ("users", "pages", "impressions", "clicks", "sx2", "sy2", "sxy")
# First exposure of a user to an experiment: answers 1 the first time, 0 after.
_EXPOSE = """
local first = redis.call('HSETNX', KEYS[1], 'exposed', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return first
"""
# Add a batch's impressions (ARGV[1]) and clicks (ARGV[2]) to an exposed user's counts;
# answers {x0, y0, x1, y1} (before and after) so the caller can update Σx², Σy², Σxy, or nil
# when the user was never exposed (their events are not the experiment's).
_COUNT = """
if redis.call('HEXISTS', KEYS[1], 'exposed') == 0 then return false end
local dy, dx = tonumber(ARGV[1]), tonumber(ARGV[2])
local y = redis.call('HINCRBY', KEYS[1], 'y', dy)
local x = redis.call('HINCRBY', KEYS[1], 'x', dx)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {x - dx, y - dy, x, y}
"""


# -- definitions and lifecycle


def create(r: redis.Redis, experiment: Experiment, now: float | None = None) -> Experiment:
    """Store a validated draft; a name is never reused (409), since records are immutable."""
    check(experiment)
    draft = replace(
        experiment, status="draft", created_at=_now(now), started_at=None, stopped_at=None
    )
    if not r.hsetnx(DEFS_KEY, draft.name, _dump(draft)):
        existing = get(r, draft.name)
        raise ExperimentConflict(
            f"experiment {draft.name!r} already exists ({existing.status}); a definition never "
            "changes: stop it and create a new experiment under a new name",
            experiment=draft.name,
            status=existing.status,
        )
    log.info("experiment %s created", draft.name)
    return draft


def get(r: redis.Redis, name: str) -> Experiment:
    raw = r.hget(DEFS_KEY, name)
    if raw is None:
        raise ExperimentNotFound(name)
    return Experiment.from_dict(json.loads(raw))


def list_all(r: redis.Redis) -> list[Experiment]:
    """Every experiment, newest first."""
    found = [Experiment.from_dict(json.loads(raw)) for raw in r.hvals(DEFS_KEY)]
    return sorted(found, key=lambda e: (-(e.created_at or 0.0), e.name))


def running(r: redis.Redis) -> tuple[Experiment, ...]:
    return parse_running(r.get(RUNNING_KEY))


def start(r: redis.Redis, name: str, now: float | None = None) -> Experiment:
    """Draft -> running, unless a running experiment on its surface shares namespace (409)."""

    def transition(experiment: Experiment, others: list[Experiment]) -> Experiment:
        if experiment.status != "draft":
            raise ExperimentConflict(
                f"experiment {name!r} is {experiment.status}; only a draft can start"
                + (
                    " (stopped is final: create a new experiment)"
                    if experiment.status == "stopped"
                    else ""
                ),
                experiment=name,
                status=experiment.status,
            )
        clash = next((o for o in others if o.overlaps(experiment)), None)
        if clash is not None:
            raise ExperimentConflict(
                f"experiment {clash.name!r} is running on surface {clash.surface!r} in namespace "
                f"[{clash.namespace[0]}, {clash.namespace[1]}), which overlaps "
                f"[{experiment.namespace[0]}, {experiment.namespace[1]}); stop it first or "
                "declare disjoint namespaces",
                experiment=name,
                running=clash.name,
            )
        return experiment.with_state("running", started_at=_now(now))

    return _transition(r, name, transition)


def stop(r: redis.Redis, name: str, now: float | None = None) -> Experiment:
    """Running -> stopped; final. Its users get the default ranker from the next request."""

    def transition(experiment: Experiment, others: list[Experiment]) -> Experiment:
        if experiment.status != "running":
            raise ExperimentConflict(
                f"experiment {name!r} is {experiment.status}; only a running experiment can stop",
                experiment=name,
                status=experiment.status,
            )
        return experiment.with_state("stopped", stopped_at=_now(now))

    return _transition(r, name, transition)


def _transition(r: redis.Redis, name: str, change: _Change) -> Experiment:
    """Apply one status change and rewrite the running list in one optimistic transaction.

    The running list is rebuilt from the definitions each time, so it cannot drift from them.
    """
    with r.pipeline(transaction=True) as pipe:
        for _ in range(MAX_RETRIES):
            try:
                pipe.watch(DEFS_KEY)
                raw = pipe.hget(DEFS_KEY, name)
                if raw is None:
                    raise ExperimentNotFound(name)
                experiment = Experiment.from_dict(json.loads(raw))
                others = [
                    e
                    for e in (Experiment.from_dict(json.loads(v)) for v in pipe.hvals(DEFS_KEY))
                    if e.status == "running" and e.name != name
                ]
                changed = change(experiment, others)
                now_running = sorted(
                    [*others, changed] if changed.status == "running" else others,
                    key=lambda e: (e.started_at or 0.0, e.name),
                )
                pipe.multi()
                pipe.hset(DEFS_KEY, name, _dump(changed))
                if now_running:
                    pipe.set(RUNNING_KEY, dump_running(now_running))
                else:
                    pipe.delete(RUNNING_KEY)
                pipe.execute()
                log.info("experiment %s %s", name, changed.status)
                return changed
            except redis.WatchError as error:
                locks.raise_if_disconnected(error)
                continue
    raise WriteConflict(f"experiment {name!r} kept changing under us; retry")


# -- counters, kept at serve and event time


class Exposure(NamedTuple):
    """One page served to an assigned user at ``now`` (epoch seconds): what is counted."""

    assignment: Assignment
    user_id: str
    now: float


# Counter increments owed to the store: (hash key, field) -> amount.
Increments = Counter[tuple[str, str]]


def record_exposure(
    r: redis.Redis, assignment: Assignment, user_id: str, now: float | None = None
) -> None:
    """A feed page was served to an assigned user: pages += 1, and users += 1 the first time,
    in the totals and in this hour's counts (feed.experiments.exposures).

    One round trip; a second only on the user's first exposure to the experiment. The web
    process buffers these instead (feed.experiments.buffer), through the same two steps.
    """
    add_counts(r, expose(r, [Exposure(assignment, user_id, _now(now))]))


def expose(
    r: redis.Redis,
    batch: Sequence[Exposure],
    marked: Callable[[tuple[str, str]], bool] = lambda _: False,
) -> Increments:
    """Count a batch of served pages in one pipeline: one mark-exposed script per distinct
    (user, experiment) and one HINCRBY per (key, field) with the pages summed. Answers the
    users increments owed for first exposures (for :func:`add_counts`): each one in the hour
    of that user's first page in the batch, as the pages one by one would have counted it.

    ``marked``: (user, experiment) pairs known to be marked already (the buffer's recent
    marks): their pages count, without the script, so none of them is a first exposure."""
    pages: Increments = Counter()
    firsts: dict[tuple[str, str], Exposure] = {}
    for exposure in batch:
        name, variant = exposure.assignment.experiment, exposure.assignment.variant
        shard = _shard(exposure.user_id)
        pages[COUNTS_KEY % (name, shard), f"{variant}:pages"] += 1
        pages[
            exposures.HOURLY_KEY % (name, shard), exposures.field(exposure.now, variant, "pages")
        ] += 1
        if not marked((exposure.user_id, name)):
            firsts.setdefault((exposure.user_id, name), exposure)
    if not pages:
        return Counter()
    pipe = r.pipeline(transaction=False)
    for (user_id, name), exposure in firsts.items():
        slot_eval(
            pipe,
            _EXPOSE,
            [USER_KEY % (user_id, name)],
            [exposure.assignment.variant, USER_TTL_SECONDS],
        )
    for (key, field), amount in pages.items():
        pipe.hincrby(key, field, amount)
    replies = pipe.execute()
    users: Increments = Counter()
    for exposure, first in zip(firsts.values(), replies[: len(firsts)], strict=True):
        if first:
            name, variant = exposure.assignment.experiment, exposure.assignment.variant
            shard = _shard(exposure.user_id)
            users[COUNTS_KEY % (name, shard), f"{variant}:users"] += 1
            users[
                exposures.HOURLY_KEY % (name, shard),
                exposures.field(exposure.now, variant, "users"),
            ] += 1
    return users


def add_counts(r: redis.Redis, increments: Increments) -> None:
    """Add counter increments in one pipeline (none: no round trip)."""
    if not increments:
        return
    pipe = r.pipeline(transaction=False)
    for (key, field), amount in increments.items():
        pipe.hincrby(key, field, amount)
    pipe.execute()


def record_events(
    r: redis.Redis,
    running: Sequence[Experiment],
    events: Iterable[tuple[str, str]],
    surface: str = "feed",
) -> None:
    """Count impressions and clicks (``(user_id, type)``; other types are ignored) of users
    exposed to a running experiment. Two round trips for the whole batch: one script per
    user updates their counts and answers the change, then one increment per counter.
    """
    per_user: dict[str, Counter[str]] = defaultdict(Counter)
    for user_id, kind in events:
        if kind in ("impression", "click"):
            per_user[user_id][kind] += 1
    # Events count only for users marked exposed: a first exposure still buffered in this
    # process is written first (one served by another process may lag by its flush interval).
    _buffer.settle(per_user.keys())
    placed = [
        (user_id, assignment, tally)
        for user_id, tally in per_user.items()
        if (assignment := assign(running, user_id, surface)) is not None
    ]
    if not placed:
        return
    pipe = r.pipeline(transaction=False)
    for user_id, assignment, tally in placed:
        slot_eval(
            pipe,
            _COUNT,
            [USER_KEY % (user_id, assignment.experiment)],
            [tally["impression"], tally["click"], USER_TTL_SECONDS],
        )
    replies = pipe.execute()
    deltas: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for (user_id, assignment, _), reply in zip(placed, replies, strict=True):
        if reply is None:  # assigned but never served a page: not in the experiment's data
            continue
        x0, y0, x1, y1 = (int(v) for v in reply)
        delta = deltas[counts_key(assignment.experiment, user_id), assignment.variant]
        delta["impressions"] += y1 - y0
        delta["clicks"] += x1 - x0
        delta["sx2"] += x1 * x1 - x0 * x0
        delta["sy2"] += y1 * y1 - y0 * y0
        delta["sxy"] += x1 * y1 - x0 * y0
    pipe = r.pipeline(transaction=False)
    for (key, variant), delta in deltas.items():
        for counter, amount in delta.items():
            if amount:
                pipe.hincrby(key, f"{variant}:{counter}", amount)
    pipe.execute()


def counts_key(name: str, user_id: str) -> str:
    """The counter shard a user's exposures and events are added to."""
    return COUNTS_KEY % (name, _shard(user_id))


def _shard(user_id: str) -> int:
    return zlib.crc32(user_id.encode()) % COUNT_SHARDS


def counts(r: redis.Redis, name: str) -> dict[str, dict[str, int]]:
    """Raw counters per variant, summed over the shards: ``{variant: {"users": ..., ...}}``."""
    _buffer.settle()  # this process's buffered exposures first: tests and the CLI read at once
    pipe = r.pipeline(transaction=False)
    for shard in range(COUNT_SHARDS):
        pipe.hgetall(COUNTS_KEY % (name, shard))
    found: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    for raw in pipe.execute():
        for key, value in raw.items():
            variant, _, counter = key.decode().rpartition(":")
            found[variant][counter] += int(value)
    return dict(found)


# -- results


def results(r: redis.Redis, name: str, confidence: float = CONFIDENCE) -> ExperimentResults:
    """Per-variant outcome and tests against the control, from the counters (no stream scan)."""
    return summarise(get(r, name), counts(r, name), confidence)


def exposure_series(
    r: redis.Redis, name: str, interval: str = "hour", now: float | None = None
) -> ExposureSeries:
    """Pages served and users first exposed per variant per hour or day, from the counts
    kept at serve time (feed.experiments.exposures)."""
    _buffer.settle()
    return exposures.series(r, get(r, name), COUNT_SHARDS, interval, now)


def _dump(experiment: Experiment) -> str:
    return json.dumps(experiment.to_dict(), separators=(",", ":"))


def _now(now: float | None) -> float:
    return time.time() if now is None else now
