"""Buffered exposures (feed/experiments/buffer.py): the same counts as one write per page,
first exposures once, entries kept through a Redis failure, the cap, and the wiring."""

from __future__ import annotations

import logging
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devtools.demo import generate_articles
from devtools.redis_server import RedisServer
from feed import experiments
from feed.experiments.assignment import Assignment, Experiment, Variant, assign
from feed.experiments.buffer import ExposureBuffer, RecentMarks
from feed.experiments.exposures import HOUR_SECONDS, HOURLY_KEY
from feed.storage.connection import open_redis
from tests.factories import demo_corpus
from tests.live import GUNICORN, REPO, _running, bearer, free_port

BASE = 1_700_000_000 // HOUR_SECONDS * HOUR_SECONDS  # an hour's start
NEVER = 3600.0  # a flush interval the tests never reach: they flush by hand
EXPERIMENT = {  # as the API takes it
    "name": "ab",
    "variants": [
        {"name": "control", "ranker": "tfidf", "params": {}, "weight": 1},
        {"name": "fresh", "ranker": "latest", "params": {}, "weight": 1},
    ],
    "traffic": 1.0,
}


def stored(r: redis.Redis, name: str = "ab") -> Experiment:
    variants = (Variant("control", "tfidf", {}, 1.0), Variant("treatment", "tfidf", {}, 1.0))
    experiments.create(r, Experiment(name, variants, 1.0, name))
    return experiments.start(r, name)


def placed(experiment: Experiment, user_id: str) -> Assignment:
    found = assign([experiment], user_id)
    assert found is not None
    return found


def snapshot(r: redis.Redis, name: str, users: set[str]) -> dict[str, dict[bytes, bytes]]:
    """Every key an exposure writes, as stored."""
    keys = [experiments.COUNTS_KEY % (name, s) for s in range(experiments.COUNT_SHARDS)]
    keys += [HOURLY_KEY % (name, s) for s in range(experiments.COUNT_SHARDS)]
    keys += [experiments.USER_KEY % (u, name) for u in sorted(users)]
    return {key: r.hgetall(key) for key in keys}


@pytest.fixture
def buffer(redis_client: redis.Redis) -> Iterator[ExposureBuffer]:
    made = ExposureBuffer(redis_client, flush_seconds=NEVER, flush_at=1_000_000)
    yield made
    made.close()


def test_counts_after_flush_equal_one_write_per_page(redis_client, buffer):
    experiment = stored(redis_client)
    rng = random.Random(14)
    users = [f"u{n}" for n in range(40)]
    # 300 pages over three hours, in serving order, users coming back within and across hours.
    pages = [
        (rng.choice(users), BASE + t) for t in sorted(rng.uniform(0, 3 * 3600) for _ in range(300))
    ]
    for user, now in pages:
        experiments.record_exposure(redis_client, placed(experiment, user), user, now)
    expected = snapshot(redis_client, "ab", set(users))
    per_page = experiments.counts(redis_client, "ab")
    assert sum(v["pages"] for v in per_page.values()) == 300
    assert len(per_page) == 2  # both variants served

    redis_client.flushall()
    experiment = stored(redis_client)
    for n, (user, now) in enumerate(pages):
        buffer.add(placed(experiment, user), user, now)
        if n in (49, 180):  # three batches, users in several of them
            assert buffer.flush()
    assert buffer.pending == 300 - 181
    assert buffer.flush() and buffer.pending == 0
    assert snapshot(redis_client, "ab", set(users)) == expected
    assert experiments.counts(redis_client, "ab") == per_page
    hourly = experiments.exposure_series(redis_client, "ab", "hour", now=BASE + 3 * 3600)
    for variant in hourly.variants:
        assert sum(variant.users) == per_page[variant.name]["users"]
        assert sum(variant.pages) == per_page[variant.name]["pages"]


def test_a_first_exposure_counts_once_in_a_batch_and_across_batches(redis_client, buffer):
    experiment = stored(redis_client)
    alice = placed(experiment, "alice")
    for minute in range(5):  # five pages in one batch, the first in the first hour
        buffer.add(alice, "alice", BASE + 3000 + minute * 60)
    assert buffer.flush()
    buffer.add(alice, "alice", BASE + 2 * HOUR_SECONDS)
    assert buffer.flush()
    found = experiments.counts(redis_client, "ab")[alice.variant]
    assert (found["users"], found["pages"]) == (1, 6)
    series = experiments.exposure_series(redis_client, "ab", "hour", now=BASE + 2 * HOUR_SECONDS)
    (mine,) = [v for v in series.variants if v.name == alice.variant]
    assert series.starts[-3:] == (BASE, BASE + HOUR_SECONDS, BASE + 2 * HOUR_SECONDS)
    assert mine.users[-3:] == (1, 0, 0)  # in the hour of the first page
    assert mine.pages[-3:] == (5, 0, 1)


def test_a_failed_flush_keeps_its_entries_for_the_next(redis_client, tmp_path: Path, caplog):
    experiment = stored(redis_client)
    server = RedisServer(tmp_path, port=free_port(), appendonly=False).start()
    r = open_redis(server.url, socket_timeout=2, connect_timeout=2)
    stored(r)
    down = ExposureBuffer(r, flush_seconds=NEVER)
    try:
        server.stop()
        for user in ("alice", "bob", "alice"):
            down.add(placed(experiment, user), user, BASE)
        with caplog.at_level(logging.WARNING, logger="feed.experiments.buffer"):
            assert down.flush() is False  # Redis down: nothing raised, nothing lost
        assert down.pending == 3
        assert "could not write exposures (3 pending" in caplog.text
        down.add(placed(experiment, "carol"), "carol", BASE + 1)
        server.start()
        assert down.flush() and down.pending == 0
        found = experiments.counts(r, "ab")
        assert sum(v["users"] for v in found.values()) == 3
        assert sum(v["pages"] for v in found.values()) == 4
    finally:
        down.close()
        r.close()
        server.stop()


def test_over_the_cap_the_oldest_are_dropped_and_logged(redis_client, caplog):
    experiment = stored(redis_client)
    capped = ExposureBuffer(redis_client, flush_seconds=NEVER, max_pending=3)
    try:
        users = [f"u{n}" for n in range(5)]
        for user in users:
            capped.add(placed(experiment, user), user, BASE)
        assert (capped.pending, capped.dropped) == (3, 2)
        with caplog.at_level(logging.WARNING, logger="feed.experiments.buffer"):
            assert capped.flush()
        assert "dropped the 2 oldest exposures" in caplog.text
        exposed = {u for u in users if redis_client.exists(experiments.USER_KEY % (u, "ab"))}
        assert exposed == set(users[2:])
    finally:
        capped.close()


def test_a_failed_flush_over_the_cap_keeps_the_newest(redis_client, caplog):
    experiment = stored(redis_client)
    unreachable = open_redis(
        f"redis://127.0.0.1:{free_port()}/0", socket_timeout=1, connect_timeout=1
    )
    capped = ExposureBuffer(unreachable, flush_seconds=NEVER, max_pending=4)
    try:
        for n in range(3):
            capped.add(placed(experiment, f"u{n}"), f"u{n}", BASE)
        assert capped.flush() is False
        for n in range(3, 6):  # arrived during the outage
            capped.add(placed(experiment, f"u{n}"), f"u{n}", BASE)
        assert (capped.pending, capped.dropped) == (4, 2)
        with caplog.at_level(logging.WARNING, logger="feed.experiments.buffer"):
            assert capped.flush() is False
        assert "dropped the 2 oldest exposures" in caplog.text
        assert [e.user_id for e in capped._pending] == ["u2", "u3", "u4", "u5"]
    finally:
        capped._pending.clear()  # nothing to write at close: that Redis never existed
        capped.close()
        unreachable.close()


def test_the_thread_flushes_on_its_tick_and_when_n_are_pending(redis_client):
    experiment = stored(redis_client)
    ticking = ExposureBuffer(redis_client, flush_seconds=0.05)
    full = ExposureBuffer(redis_client, flush_seconds=NEVER, flush_at=8)
    try:
        ticking.add(placed(experiment, "alice"), "alice", BASE)
        for n in range(8):
            full.add(placed(experiment, f"u{n}"), f"u{n}", BASE)
        written = [experiments.USER_KEY % (u, "ab") for u in ("alice", "u7")]
        deadline = time.monotonic() + 5
        # pending empties as a flush takes the batch, before it is written: wait for the keys.
        while not all(redis_client.exists(k) for k in written) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert all(redis_client.exists(k) for k in written)
        assert (ticking.pending, full.pending) == (0, 0)
    finally:
        ticking.close()
        full.close()


def test_close_writes_what_is_pending_and_later_adds_at_once(redis_client):
    experiment = stored(redis_client)
    closing = ExposureBuffer(redis_client, flush_seconds=NEVER)
    closing.add(placed(experiment, "alice"), "alice", BASE)
    closing.close()
    closing.add(placed(experiment, "bob"), "bob", BASE)  # a request that ends after close
    found = experiments.counts(redis_client, "ab")
    assert sum(v["users"] for v in found.values()) == 2


def test_served_pages_are_buffered_and_settled_before_results(client, tokens, services):
    admin = tokens.admin()
    demo_corpus(client, admin, 40)
    assert client.post("/v1/experiments", json=EXPERIMENT, headers=admin).status_code == 201
    assert client.post("/v1/experiments/ab/start", headers=admin).status_code == 200
    for n in range(6):
        user = f"reader-{n}"
        for _ in range(2):
            page = client.get(f"/v1/users/{user}/feed", headers=tokens.user(user))
            assert page.status_code == 200 and page.json["experiment"] == "ab"
    results = client.get("/v1/experiments/ab/results", headers=admin).json
    assert sum(v["users"] for v in results["variants"]) == 6
    assert sum(v["pages"] for v in results["variants"]) == 12
    assert services.exposures.pending == 0


@pytest.mark.slow
def test_a_gunicorn_worker_writes_its_exposures_at_exit_and_a_killed_one_loses_them(
    tmp_path: Path, redis_server: RedisServer
):
    r = open_redis(redis_server.url, socket_timeout=5, connect_timeout=5)
    r.flushall()
    command = [GUNICORN, "--config", "python:tests.exposure_flush_conf", "wsgi:app"]
    try:
        with _running(command, tmp_path, redis_server.url, 1, 4, {}, cwd=REPO) as live:
            live.ingest(generate_articles(60))
            created = live.call("POST", "/v1/experiments", headers=live.admin, json_body=EXPERIMENT)
            assert created.status == 201, created.body
            assert live.call("POST", "/v1/experiments/ab/start", headers=live.admin).status == 200

            def read(users: list[str]) -> None:
                for user in users:
                    for _ in range(2):
                        reply = live.call("GET", f"/v1/users/{user}/feed", headers=bearer(user))
                        assert reply.status == 200, reply.body

            read(["lost-1", "lost-2"])
            (worker,) = live.worker_pids()
            os.kill(worker, signal.SIGKILL)  # a crash: its buffer is gone
            deadline = time.monotonic() + 30
            while live.worker_pids() in (set(), {worker}) and time.monotonic() < deadline:
                time.sleep(0.05)
            live.wait_ready()
            read(["kept-1", "kept-2", "kept-3"])
            assert experiments.counts(r, "ab") == {}  # all buffered: the interval is an hour
        # SIGTERM: the worker finishes its requests and exits; atexit writes what it holds.
        found = experiments.counts(r, "ab")
        assert sum(v["users"] for v in found.values()) == 3
        assert sum(v["pages"] for v in found.values()) == 6
        assert not r.exists(experiments.USER_KEY % ("lost-1", "ab"))
    finally:
        r.flushall()
        r.close()


def test_a_reader_marked_lately_costs_no_script_but_every_page_counts(redis_client, buffer):
    experiment = stored(redis_client)
    assignment = placed(experiment, "alice")
    marker = experiments.USER_KEY % ("alice", "ab")
    buffer.add(assignment, "alice", BASE)
    assert buffer.flush()
    assert redis_client.exists(marker)
    redis_client.delete(marker)  # were it marked again, the marker would come back
    for n in range(3):
        buffer.add(assignment, "alice", BASE + n)
    assert buffer.flush()
    assert not redis_client.exists(marker)
    found = experiments.counts(redis_client, "ab")[assignment.variant]
    assert (found["pages"], found["users"]) == (4, 1)


def test_recent_marks_expire_and_stay_bounded():
    marks = RecentMarks(seconds=3600, capacity=2)
    marks.add([("a", "ab"), ("b", "ab")])
    assert ("a", "ab") in marks and ("b", "ab") in marks
    marks.add([("a", "ab"), ("c", "ab")])  # "a" marked again: "b" is now the oldest
    assert ("b", "ab") not in marks
    assert ("a", "ab") in marks and ("c", "ab") in marks
    stale = RecentMarks(seconds=0)
    stale.add([("a", "ab")])
    assert ("a", "ab") not in stale  # due to be marked again (and its expiry refreshed)
