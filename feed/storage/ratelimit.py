"""Fixed-window rate limits counted in Redis and shared by every process, with leases.

Counting every request in Redis costs a round trip per limit per request, as much as the
cached feed itself. Instead a process takes a *lease* of several requests at once (one INCRBY)
and admits that many locally. Leases start at one request and grow fourfold each time one is used
up within the window, up to ``MAX_LEASE``: a key that sends few requests is counted exactly, one
round trip each, and a busy one costs a round trip every ``MAX_LEASE`` requests. A key over its
limit is refused locally until its window ends, so a flood costs Redis nothing.

What it gives up: leased requests that a process never uses still count against the key, so a
key spread over P processes can be refused up to P × ``MAX_LEASE`` requests early (only keys
busy enough to grow their leases). For abuse limits that is the right trade.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import limits
import redis

from feed.storage.keys import INTEGER, KeyTemplate, Slot

log = logging.getLogger(__name__)

# One counter per limited key and window; the key is its own hash tag, so counters spread over
# the cluster's slots.
SCOPE = Slot("rate-limit scope", r"[a-z]+")
# A limited key is a user or an address. One that could end the hash tag (a brace, from a
# forwarded address a misconfigured proxy chain let through) or is long stands in by its
# digest ("#" is not a safe character, so a digest never equals a key kept as it is).
SAFE_LIMITED = r"[A-Za-z0-9._:@%-]{1,160}"
LIMITED = Slot("limited key", rf"{SAFE_LIMITED}|#[0-9a-f]{{40}}")
# scope, key, period, window
COUNTER_KEY = KeyTemplate("nf:ratelimit:{%s:%s}:%ds:%d", SCOPE, LIMITED, INTEGER, INTEGER)
MAX_LEASE = 64
LEASE_GROWTH = 4  # 1, 4, 16, 64: a busy key reaches full leases within its fourth round trip


@dataclass(frozen=True)
class Rule:
    """``amount`` requests per ``period`` seconds for each key of ``scope``."""

    scope: str
    amount: int
    period: int

    def __post_init__(self) -> None:
        if not re.fullmatch(SCOPE.pattern, self.scope):
            raise ValueError(f"rate limit scope {self.scope!r} is not a-z only")

    @classmethod
    def parse(cls, scope: str, text: str) -> list[Rule]:
        """Rules from limits-library syntax, e.g. ``3000/minute`` or ``50/second;2000/hour``."""
        try:
            items = limits.parse_many(text)
        except ValueError as exc:
            raise ValueError(f"rate limit {text!r}: {exc}") from exc
        return [cls(scope, item.amount, item.get_expiry()) for item in items]


@dataclass(frozen=True)
class Denial:
    rule: Rule
    reset_at: int  # epoch second at which the window ends

    def retry_after(self, now: float) -> int:
        return max(1, self.reset_at - int(now))


@dataclass
class _Lease:
    window: int
    ends_at: int  # epoch second at which the window ends
    remaining: int = 0  # requests this process may still admit in the window
    size: int = 0  # the size of the last lease taken
    refused: bool = False  # the key is over its limit until the window ends


class RateLimiter:
    """Thread-safe; one per process. ``check`` answers None (go ahead) or the breached rule."""

    def __init__(self, r: redis.Redis, clock: Callable[[], float] = time.time) -> None:
        self._redis = r
        self._clock = clock
        self._leases: dict[tuple[Rule, str], _Lease] = {}
        self._lock = threading.Lock()
        self._pruned_at = 0.0

    def check(self, hits: Sequence[tuple[Rule, str]]) -> Denial | None:
        """Count one request against each ``(rule, key)``; at most one Redis round trip."""
        now = self._clock()
        wanted: list[tuple[Rule, str, int, int]] = []  # rule, key, window, lease size
        with self._lock:
            self._prune(now)
            for rule, key in hits:
                window = int(now // rule.period)
                lease = self._leases.get((rule, key))
                if lease is None or lease.window != window:
                    lease = self._leases[rule, key] = _Lease(window, (window + 1) * rule.period)
                if lease.refused:
                    return Denial(rule, lease.ends_at)
                if lease.remaining == 0:
                    wanted.append(
                        (rule, key, window, min(max(lease.size * LEASE_GROWTH, 1), MAX_LEASE))
                    )
            for rule, key in hits:
                lease = self._leases[rule, key]
                if lease.remaining > 0:
                    lease.remaining -= 1  # counted now; a refusal below forfeits it, as Redis did
        if not wanted:
            return None
        totals = self._take(wanted)
        if totals is None:
            return None  # Redis unreachable: let the request through to meet the same outage
        denial: Denial | None = None
        with self._lock:
            for (rule, key, window, size), total in zip(wanted, totals, strict=True):
                granted = max(0, min(size, rule.amount - (total - size)))
                lease = self._leases.get((rule, key))
                if lease is None or lease.window != window:
                    continue  # the window turned while we asked; the next request re-leases
                if granted == 0:
                    lease.refused = True
                    denial = denial or Denial(rule, lease.ends_at)
                    continue
                lease.size = size
                lease.remaining += granted - 1  # this request takes one of them
        return denial

    def _take(self, wanted: Sequence[tuple[Rule, str, int, int]]) -> list[int] | None:
        pipe = self._redis.pipeline(transaction=False)
        for rule, key, window, size in wanted:
            counter = counter_key(rule, key, window)
            pipe.incrby(counter, size)
            pipe.expire(counter, rule.period + 1)
        try:
            replies = pipe.execute()
        except redis.RedisError as exc:
            log.warning("rate limits not counted: %s", exc)
            return None
        return [int(total) for total in replies[::2]]

    def _prune(self, now: float) -> None:
        """Forget leases of ended windows, at most once a second (the caller holds the lock)."""
        if now - self._pruned_at < 1:
            return
        self._pruned_at = now
        self._leases = {k: v for k, v in self._leases.items() if v.ends_at > now}


def counter_key(rule: Rule, key: str, window: int) -> str:
    """The counter of ``key`` under ``rule`` in ``window``."""
    if not re.fullmatch(SAFE_LIMITED, key):
        key = "#" + hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()
    return COUNTER_KEY % (rule.scope, key, rule.period, window)
