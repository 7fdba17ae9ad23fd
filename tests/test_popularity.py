"""Forward-decayed click and impression counts, including the epoch rebase."""

from __future__ import annotations

import pytest

from feed.readers.popularity import EPOCH_KEY, REBASE_EXPONENT, SHOWN_KEY, Popularity

HOUR = 3600.0
T0 = 1_800_000_000.0


def test_counts_decay_with_the_half_life(redis_client):
    popularity = Popularity(redis_client, half_life_hours=24)
    popularity.record(
        [("impression", "a", T0), ("impression", "a", T0), ("click", "a", T0), ("read", "a", T0)],
        now=T0,
    )
    assert popularity.read(T0) == {"a": pytest.approx((1.0, 2.0))}
    clicks, shown = popularity.read(T0 + 24 * HOUR)["a"]
    assert (clicks, shown) == (pytest.approx(0.5), pytest.approx(1.0))


def test_late_events_weigh_by_when_they_happened(redis_client):
    popularity = Popularity(redis_client, half_life_hours=1)
    popularity.record([("impression", "a", T0 - 2 * HOUR)], now=T0)
    assert popularity.read(T0)["a"][1] == pytest.approx(0.25)


def test_the_epoch_rebase_keeps_live_counts_and_forgets_faded_ones(redis_client):
    popularity = Popularity(redis_client, half_life_hours=1)
    popularity.record([("impression", "old", T0)], now=T0)
    recent = T0 + REBASE_EXPONENT * HOUR
    popularity.record([("impression", "recent", recent)], now=recent)
    later = T0 + (REBASE_EXPONENT + 2) * HOUR  # forces a rebase on the next write
    popularity.record([("impression", "new", later)], now=later)
    counts = popularity.read(later)
    assert counts["new"][1] == pytest.approx(1.0)
    assert counts["recent"][1] == pytest.approx(0.25, rel=1e-9)
    # 2^-66 of an impression is below FORGET_BELOW: the article leaves the sets for good.
    assert "old" not in counts and redis_client.zscore(SHOWN_KEY, "old") is None
    assert float(redis_client.get(EPOCH_KEY)) == later


def test_nothing_recorded_reads_empty(redis_client):
    assert Popularity(redis_client, half_life_hours=24).read(T0) == {}
