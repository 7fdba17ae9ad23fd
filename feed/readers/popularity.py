"""Time-decayed click and impression counts per article, for the popularity ranker.

Forward decay (Cormode et al. 2009): an event at time t adds 2^((t - epoch) / half-life) to its
article's score, so one ZINCRBY per event keeps an exponentially decayed count, and dividing by
2^((now - epoch) / half-life) at read time gives the count as of now. Weights grow with time,
so the epoch moves forward (rescaling every score) long before they could overflow a double.
Weights are computed inside Redis from the stored epoch, so a writer can never mix epochs.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence

import redis

# One hash tag: the script reads the epoch and writes both sets in one cluster slot.
CLICKS_KEY = "nf:{popularity}:clicks"  # zset article id -> forward-decayed clicks
SHOWN_KEY = "nf:{popularity}:impressions"  # zset article id -> forward-decayed impressions
EPOCH_KEY = "nf:{popularity}:epoch"  # epoch seconds the weights are relative to

# Rebase once weights reach 2^64: far below a double's 2^1023, and rare (64 half-lives).
REBASE_EXPONENT = 64
# At a rebase, articles whose decayed count fell below this are dropped, so the sets hold only
# articles seen within about REBASE_EXPONENT + 20 half-lives instead of growing forever.
FORGET_BELOW = 2.0**-20
# Articles read per build: the most shown ones; the others get the ranker's prior CTR.
CANDIDATES = 5000
COUNTED = ("click", "impression")
# Feed builds in one process share a read this long: reading CANDIDATES counts costs ~15 ms,
# more than the rest of a build, and counts halving over a day barely move in a few seconds.
SNAPSHOT_SECONDS = 5.0

_RECORD = """
local hl = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local epoch = tonumber(redis.call('GET', KEYS[3]) or '-1')
if epoch < 0 or (now - epoch) / hl > tonumber(ARGV[3]) then
  if epoch >= 0 then
    local factor = math.pow(2, -(now - epoch) / hl)
    redis.call('ZUNIONSTORE', KEYS[1], 1, KEYS[1], 'WEIGHTS', factor)
    redis.call('ZUNIONSTORE', KEYS[2], 1, KEYS[2], 'WEIGHTS', factor)
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4])
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4])
  end
  epoch = now
  redis.call('SET', KEYS[3], tostring(now))
end
for i = 5, #ARGV, 3 do
  local key = KEYS[2]
  if ARGV[i] == 'click' then key = KEYS[1] end
  redis.call('ZINCRBY', key, math.pow(2, (tonumber(ARGV[i + 2]) - epoch) / hl), ARGV[i + 1])
end
return 1
"""


class Popularity:
    def __init__(self, r: redis.Redis, half_life_hours: float) -> None:
        self._redis = r
        self._half_life = half_life_hours * 3600.0
        # (monotonic time taken, the counts) of this process's latest read.
        self._snapshot: tuple[float, dict[str, tuple[float, float]]] | None = None
        self._snapshot_lock = threading.Lock()

    def record(self, events: Sequence[tuple[str, str, float]], now: float) -> None:
        """Count (kind, article id, when) events; kinds other than click and impression pass."""
        args: list[str | float] = []
        for kind, article_id, when in events:
            if kind in COUNTED:
                args += [kind, article_id, when]
        if args:
            self._redis.eval(
                _RECORD,
                3,
                CLICKS_KEY,
                SHOWN_KEY,
                EPOCH_KEY,
                self._half_life,
                now,
                REBASE_EXPONENT,
                FORGET_BELOW,
                *args,
            )

    def read(self, now: float) -> dict[str, tuple[float, float]]:
        """(clicks, impressions) as of ``now`` for the most shown articles."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(EPOCH_KEY)
        pipe.zrevrange(SHOWN_KEY, 0, CANDIDATES - 1, withscores=True)
        raw_epoch, shown = pipe.execute()
        if raw_epoch is None or not shown:
            return {}
        scale = math.pow(2.0, (now - float(raw_epoch)) / self._half_life)
        ids = [article_id for article_id, _ in shown]
        clicks = self._redis.zmscore(CLICKS_KEY, ids)
        return {
            article_id.decode(): ((c or 0.0) / scale, s / scale)
            for (article_id, s), c in zip(shown, clicks, strict=True)
        }

    def recent(self, now: float) -> dict[str, tuple[float, float]]:
        """``read(now)``, or the counts of a read this process made less than
        SNAPSHOT_SECONDS ago (the same object, as of then: a few seconds change a day-long
        decay by a few parts in 100,000, and the events since are not in it)."""
        snapshot = self._snapshot
        if snapshot is None or time.monotonic() - snapshot[0] >= SNAPSHOT_SECONDS:
            with self._snapshot_lock:
                snapshot = self._snapshot
                if snapshot is None or time.monotonic() - snapshot[0] >= SNAPSHOT_SECONDS:
                    snapshot = (time.monotonic(), self.read(now))
                    self._snapshot = snapshot
        return snapshot[1]
