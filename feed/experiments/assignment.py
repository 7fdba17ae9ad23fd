"""Experiment definitions and deterministic bucketing: which variant serves a user (no Redis).

The scheme, after PlanOut and GrowthBook:

- **Hash.** ``bucket(text)`` is the first 8 bytes of SHA-1(text), read as a big-endian
  unsigned integer, modulo ``BUCKETS`` (10,000). SHA-1 as in PlanOut (which keeps the first
  60 bits); it is used for spread, not secrecy. The modulo bias of a 64-bit value over 10,000
  buckets is below 1e-15.
- **Namespace.** Experiments on one surface that may run together are declared in disjoint
  ranges ``[start, end)`` of the surface's namespace. A user's namespace bucket is
  ``bucket(f"ns:{surface}:{user_id}")``; the user belongs to an experiment's namespace when
  ``bucket / 10,000`` falls in its range. The hash does not involve the experiment, so the
  namespaces of concurrent experiments never share a user.
- **Traffic and variants.** A user's assignment bucket is ``bucket(f"{salt}:{user_id}")``.
  The experiment covers buckets ``[0, traffic × 10,000)``; within them each variant gets a
  contiguous range proportional to its weight, in declaration order (the first variant is the
  control). A user outside the traffic is not in the experiment and gets the default ranker.

The answer depends only on the definition and the user id: every host gives the same user the
same variant without storing anything per user, and the salt (the experiment's name unless
given) makes the splits of different experiments independent of each other.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from feed.exceptions import InvalidExperiment
from feed.ids import ID_RULE, SLUG_RULE, is_valid_id, is_valid_slug
from recommender.registry import make_ranker

log = logging.getLogger(__name__)

BUCKETS = 10_000
MIN_VARIANTS = 2
MAX_VARIANTS = 10  # beyond this each arm gets too few users for any test to mean anything
DEFAULT_SURFACE = "feed"
FULL_RANGE = (0.0, 1.0)

Status = Literal["draft", "running", "stopped"]


def bucket(text: str) -> int:
    """The bucket (0..9,999) of a string: first 8 bytes of its SHA-1, modulo 10,000."""
    digest = hashlib.sha1(text.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def to_buckets(fraction: float) -> int:
    """A fraction of the hash space as a whole number of buckets."""
    return min(BUCKETS, max(0, round(fraction * BUCKETS)))


@dataclass(frozen=True)
class Assignment:
    """One user's place in an experiment: the variant and the ranker that serves them."""

    experiment: str
    variant: str
    ranker: str
    params: Mapping[str, float]
    key: str  # "<experiment>:<variant>": cache keys and labels (slug characters and ':')


@dataclass(frozen=True)
class Variant:
    name: str
    ranker: str
    params: Mapping[str, float]
    weight: float


@dataclass(frozen=True)
class Experiment:
    name: str
    variants: tuple[Variant, ...]  # the first one is the control
    traffic: float  # share of the namespace's users in the experiment, (0, 1]
    salt: str
    surface: str = DEFAULT_SURFACE
    namespace: tuple[float, float] = FULL_RANGE  # [start, end) of the surface's hash space
    status: Status = "draft"
    created_at: float | None = None  # epoch seconds
    started_at: float | None = None
    stopped_at: float | None = None
    # Precomputed for assign(): bucket bounds and the answer for each variant.
    _cuts: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _answers: tuple[Assignment, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        coverage = to_buckets(self.traffic) if math.isfinite(self.traffic) else 0
        weights = [w if math.isfinite(w) and w > 0 else 0.0 for w in self.weights]
        total = sum(weights)
        if not math.isfinite(coverage * total):
            # Weights near the float maximum: their sum or coverage × sum overflows to inf (and
            # inf / inf is NaN). Scaled to the largest one, the shares are the same.
            top = max(weights)
            weights = [w / top for w in weights]
            total = sum(weights)
        cuts: list[int] = []
        running = 0.0
        for weight in weights:
            running += weight
            cuts.append(round(coverage * running / total) if total > 0 else 0)
        if cuts and total > 0:
            cuts[-1] = coverage  # no bucket lost to rounding
        answers = tuple(
            Assignment(self.name, v.name, v.ranker, v.params, f"{self.name}:{v.name}")
            for v in self.variants
        )
        object.__setattr__(self, "_cuts", tuple(cuts))
        object.__setattr__(self, "_answers", answers)

    @property
    def control(self) -> Variant:
        return self.variants[0]

    @property
    def weights(self) -> tuple[float, ...]:
        return tuple(v.weight for v in self.variants)

    @property
    def shares(self) -> tuple[float, ...]:
        """Each variant's share of the experiment's users, summing to 1 (weights must be > 0).

        Weights near the float maximum are scaled down first, so their sum stays finite.
        """
        weights = self.weights
        total = sum(weights)
        if not math.isfinite(total):
            top = max(weights)
            weights = tuple(w / top for w in weights)
            total = sum(weights)
        return tuple(w / total for w in weights)

    @property
    def namespace_buckets(self) -> tuple[int, int]:
        return to_buckets(self.namespace[0]), to_buckets(self.namespace[1])

    def overlaps(self, other: Experiment) -> bool:
        """Whether the two could both claim one user (same surface, intersecting namespaces)."""
        lo, hi = self.namespace_buckets
        other_lo, other_hi = other.namespace_buckets
        return self.surface == other.surface and lo < other_hi and other_lo < hi

    def variant_range(self, name: str) -> tuple[int, int]:
        """The assignment buckets ``[low, high)`` of one variant."""
        index = [v.name for v in self.variants].index(name)
        return (self._cuts[index - 1] if index else 0), self._cuts[index]

    def _place(self, assignment_bucket: int) -> Assignment | None:
        if not self._cuts or assignment_bucket >= self._cuts[-1]:
            return None
        return self._answers[bisect_right(self._cuts, assignment_bucket)]

    # -- stored form

    def to_dict(self, *, state: bool = True) -> dict[str, Any]:
        """JSON-ready definition; ``state=False`` leaves out status and timestamps."""
        data: dict[str, Any] = {
            "name": self.name,
            "surface": self.surface,
            "salt": self.salt,
            "traffic": self.traffic,
            "namespace": list(self.namespace),
            "variants": [
                {"name": v.name, "ranker": v.ranker, "params": dict(v.params), "weight": v.weight}
                for v in self.variants
            ],
        }
        if state:
            data.update(
                status=self.status,
                created_at=self.created_at,
                started_at=self.started_at,
                stopped_at=self.stopped_at,
            )
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Experiment:
        start, end = data.get("namespace", FULL_RANGE)
        return cls(
            name=data["name"],
            variants=tuple(
                Variant(v["name"], v["ranker"], dict(v.get("params") or {}), float(v["weight"]))
                for v in data["variants"]
            ),
            traffic=float(data["traffic"]),
            salt=data.get("salt") or data["name"],
            surface=data.get("surface", DEFAULT_SURFACE),
            namespace=(float(start), float(end)),
            status=data.get("status", "draft"),
            created_at=data.get("created_at"),
            started_at=data.get("started_at"),
            stopped_at=data.get("stopped_at"),
        )

    def with_state(
        self,
        status: Status,
        *,
        created_at: float | None = None,
        started_at: float | None = None,
        stopped_at: float | None = None,
    ) -> Experiment:
        """A copy in ``status``; timestamps not given keep their value."""
        return replace(
            self,
            status=status,
            created_at=self.created_at if created_at is None else created_at,
            started_at=self.started_at if started_at is None else started_at,
            stopped_at=self.stopped_at if stopped_at is None else stopped_at,
        )


def assign(
    running: Sequence[Experiment], user_id: str, surface: str = DEFAULT_SURFACE
) -> Assignment | None:
    """The variant serving ``user_id`` on ``surface``, or None for the default ranker.

    Pure and deterministic: two SHA-1s of short strings at most for one experiment (one when
    the experiment spans the whole namespace), a few microseconds.
    """
    ns_bucket = -1
    for experiment in running:
        if experiment.surface != surface:
            continue
        lo, hi = experiment.namespace_buckets
        if (lo, hi) != (0, BUCKETS):
            if ns_bucket < 0:
                ns_bucket = bucket(f"ns:{surface}:{user_id}")
            if not lo <= ns_bucket < hi:
                continue
        # Running experiments on one surface have disjoint namespaces, so this is the only
        # candidate: outside its traffic the user gets the default ranker.
        return experiment._place(bucket(f"{experiment.salt}:{user_id}"))
    return None


# The feed parses the running set on every request; it changes only on start and stop.
_memo: tuple[bytes | None, tuple[Experiment, ...]] = (None, ())


def parse_running(raw: bytes | None) -> tuple[Experiment, ...]:
    """The running experiments from their stored JSON list; memoised on the raw bytes."""
    global _memo
    if not raw:
        return ()
    memo = _memo  # one read: another thread may swap it meanwhile
    if memo[0] == raw:
        return memo[1]
    try:
        parsed = tuple(Experiment.from_dict(item) for item in json.loads(raw))
    except (ValueError, KeyError, TypeError) as exc:
        # Logged once per distinct value (the memo keeps the empty answer), not per request.
        log.error("unreadable running-experiments list, serving the default ranker: %s", exc)
        parsed = ()
    _memo = (raw, parsed)
    return parsed


def dump_running(running: Sequence[Experiment]) -> bytes:
    """The compact JSON list the feed reads on every request (definitions only, no state)."""
    return json.dumps([e.to_dict(state=False) for e in running], separators=(",", ":")).encode()


def check(experiment: Experiment) -> Experiment:
    """Raise InvalidExperiment with a precise message unless the definition can run."""
    name = experiment.name
    if not is_valid_slug(name):
        raise InvalidExperiment(f"experiment name {name[:200]!r} is not valid: {SLUG_RULE}")
    if not is_valid_slug(experiment.surface):
        raise InvalidExperiment(f"surface {experiment.surface[:200]!r} is not valid: {SLUG_RULE}")
    if not is_valid_id(experiment.salt):
        raise InvalidExperiment(f"salt {experiment.salt[:200]!r} is not valid: {ID_RULE}")
    count = len(experiment.variants)
    if not MIN_VARIANTS <= count <= MAX_VARIANTS:
        raise InvalidExperiment(
            f"an experiment needs {MIN_VARIANTS}-{MAX_VARIANTS} variants "
            f"(the first is the control), got {count}"
        )
    traffic = experiment.traffic
    if not (math.isfinite(traffic) and 0 < traffic <= 1):
        raise InvalidExperiment(f"traffic must be in (0, 1], got {traffic}")
    start, end = experiment.namespace
    if not (0 <= start < end <= 1):
        raise InvalidExperiment(
            f"namespace must be [start, end) with 0 <= start < end <= 1, got [{start}, {end})"
        )
    lo, hi = experiment.namespace_buckets
    if lo >= hi:
        raise InvalidExperiment(
            f"namespace [{start}, {end}) is narrower than one bucket (1/{BUCKETS})"
        )
    seen: set[str] = set()
    for variant in experiment.variants:
        _check_variant(variant, seen)
    for variant in experiment.variants:
        low, high = experiment.variant_range(variant.name)
        if low >= high:
            raise InvalidExperiment(
                f"variant {variant.name!r} gets no buckets: traffic {traffic} × its weight "
                f"is below 1/{BUCKETS} of users"
            )
    return experiment


def _check_variant(variant: Variant, seen: set[str]) -> None:
    if not is_valid_slug(variant.name):
        raise InvalidExperiment(f"variant name {variant.name[:200]!r} is not valid: {SLUG_RULE}")
    if variant.name in seen:
        raise InvalidExperiment(f"variant names must be unique: {variant.name!r} repeats")
    seen.add(variant.name)
    if not (math.isfinite(variant.weight) and variant.weight > 0):
        raise InvalidExperiment(
            f"variant {variant.name!r}: weight must be > 0, got {variant.weight}"
        )
    try:
        make_ranker(variant.ranker, variant.params)
    except ValueError as exc:
        raise InvalidExperiment(f"variant {variant.name!r}: {exc}") from None
