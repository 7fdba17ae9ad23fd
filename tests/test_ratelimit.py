"""Leased fixed-window limits: exact for quiet keys, cheap for busy ones, shared by processes."""

from __future__ import annotations

import pytest

from devtools.redis_server import RedisServer
from feed.storage.connection import open_redis
from feed.storage.ratelimit import COUNTER_KEY, MAX_LEASE, RateLimiter, Rule


class Clock:
    def __init__(self, now: float = 1_000_020.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def admitted(limiter: RateLimiter, rule: Rule, key: str, n: int) -> int:
    return sum(limiter.check([(rule, key)]) is None for _ in range(n))


def counter(redis_client, rule: Rule, key: str, clock: Clock) -> int:
    window = int(clock.now // rule.period)
    return int(redis_client.get(COUNTER_KEY % (rule.scope, key, rule.period, window)) or 0)


def test_a_quiet_key_is_counted_exactly(redis_client):
    rule, clock = Rule.parse("user", "5/minute")[0], Clock()
    limiter = RateLimiter(redis_client, clock)
    assert [limiter.check([(rule, "alice")]) is None for _ in range(7)] == [True] * 5 + [False] * 2
    denial = limiter.check([(rule, "alice")])
    assert denial is not None and denial.rule == rule
    assert denial.reset_at == (int(clock.now // 60) + 1) * 60
    assert denial.retry_after(clock.now) == denial.reset_at - int(clock.now)
    assert limiter.check([(rule, "bob")]) is None


def test_a_busy_key_costs_one_round_trip_per_lease(redis_client):
    rule, clock = Rule.parse("ip", "100000/minute")[0], Clock()
    limiter = RateLimiter(redis_client, clock)
    before = redis_client.info("stats")["total_commands_processed"]
    assert admitted(limiter, rule, "10.0.0.1", 1000) == 1000
    commands = redis_client.info("stats")["total_commands_processed"] - before
    # Leases of 1, 4, 16, 64, then 64 each: about 4 + 15 leases of two commands each
    # (INCRBY, EXPIRE), and the INFO above.
    assert commands <= 2 * (4 + 1000 // MAX_LEASE) + 1
    assert 1000 <= counter(redis_client, rule, "10.0.0.1", clock) < 1000 + MAX_LEASE


def test_processes_share_the_count(redis_client):
    rule, clock = Rule.parse("user", "3/minute")[0], Clock()
    first, second = RateLimiter(redis_client, clock), RateLimiter(redis_client, clock)
    results = [p.check([(rule, "alice")]) is None for p in (first, second, first, second)]
    assert results == [True, True, True, False]


def test_unused_leases_cost_a_busy_key_at_most_one_lease_per_process(redis_client):
    rule, clock = Rule.parse("user", "300/minute")[0], Clock()
    limiters = [RateLimiter(redis_client, clock) for _ in range(4)]
    total = sum(admitted(limiter, rule, "alice", 100) for limiter in limiters)
    assert 300 - 4 * MAX_LEASE <= total <= 300
    assert counter(redis_client, rule, "alice", clock) >= 300


def test_a_refused_key_is_refused_locally_until_its_window_ends(redis_client):
    rule, clock = Rule.parse("user", "2/minute")[0], Clock(1_000_000.0)
    limiter = RateLimiter(redis_client, clock)
    assert admitted(limiter, rule, "alice", 3) == 2
    before = redis_client.info("stats")["total_commands_processed"]
    assert admitted(limiter, rule, "alice", 50) == 0
    assert redis_client.info("stats")["total_commands_processed"] - before <= 1  # INFO itself
    clock.now += 60
    assert admitted(limiter, rule, "alice", 3) == 2


def test_every_rule_is_counted_and_the_first_breach_answers(redis_client):
    per_ip, per_user, clock = (
        Rule.parse("ip", "3/minute")[0],
        Rule.parse("user", "10/minute")[0],
        Clock(),
    )
    limiter = RateLimiter(redis_client, clock)
    answers = [limiter.check([(per_ip, "10.0.0.1"), (per_user, f"u{n}")]) for n in range(4)]
    assert answers[:3] == [None] * 3
    assert answers[3] is not None and answers[3].rule == per_ip


def test_an_unreachable_redis_lets_requests_through(tmp_path):
    server = RedisServer(tmp_path / "redis", appendonly=False).start()
    client = open_redis(server.url, socket_timeout=0.5, connect_timeout=0.5)
    server.stop()
    limiter = RateLimiter(client, Clock())
    assert limiter.check([(Rule.parse("user", "1/minute")[0], "alice")]) is None


@pytest.mark.parametrize("text", ["lots", "5/fortnight", ""])
def test_a_bad_limit_is_a_clear_error(text):
    with pytest.raises(ValueError, match="rate limit"):
        Rule.parse("user", text)


def test_several_windows_per_scope_are_each_enforced(redis_client):
    per_second, per_hour = Rule.parse("user", "2/second;3/hour")
    both = [(per_second, "alice"), (per_hour, "alice")]
    clock = Clock(1_000_000.0)
    limiter = RateLimiter(redis_client, clock)
    answers = [limiter.check(both) for _ in range(3)]
    assert answers[:2] == [None, None]
    assert answers[2] is not None and answers[2].rule == per_second
    clock.now += 1  # a new second, but the hour's three are spent (the refused one counted)
    denial = limiter.check(both)
    assert denial is not None and denial.rule == per_hour
