"""Reads and scripts that work the same on one Redis and on a cluster, a request's Redis wait
budget, and a plain URL naming a cluster node refused at start (feed.storage.connection)."""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest
from redis.cluster import RedisCluster

from api import create_app
from feed.storage.connection import CLUSTER_SCHEME, mget_across_slots, slot_eval, slot_mget
from feed.storage.deadline import RedisNotWaited, request_budget
from tests.conftest import TEST_SECRET
from tests.live import NEWSFEED, free_port

KEYS = [f"nf:{{u:reader-{n}}}:probe" for n in range(40)] + ["nf:{corpus}:probe"]


def test_one_read_answers_keys_of_every_slot_in_order(redis_client):
    for n, key in enumerate(KEYS):
        if n % 3:
            redis_client.set(key, f"value-{n}")
    expected = [None if n % 3 == 0 else f"value-{n}".encode() for n in range(len(KEYS))]
    assert mget_across_slots(redis_client, KEYS) == expected
    assert mget_across_slots(redis_client, list(reversed(KEYS))) == list(reversed(expected))


def test_broken_connections_are_replaced_on_the_way(redis_client):
    redis_client.set(KEYS[1], "kept")
    assert mget_across_slots(redis_client, KEYS)[1] == b"kept"  # pooled connections now
    # Every node drops its clients (as on a restart); the next read must still answer.
    redis_client.client_kill_filter(_type="normal", skipme=True)
    if isinstance(redis_client, RedisCluster):
        for node in redis_client.get_primaries():
            node.redis_connection.client_kill_filter(_type="normal", skipme=True)
    assert mget_across_slots(redis_client, KEYS)[1] == b"kept"
    assert mget_across_slots(redis_client, KEYS)[1] == b"kept"


def test_same_slot_commands_run_in_a_pipeline(redis_client):
    pipe = redis_client.pipeline(transaction=False)
    slot_mget(pipe, ["nf:{corpus}:a", "nf:{corpus}:b"])
    slot_eval(pipe, "return redis.call('INCRBY', KEYS[1], ARGV[1])", ["nf:{corpus}:a"], [5])
    pipe.get("nf:{u:x}:elsewhere")
    assert pipe.execute() == [[None, None], 5, None]


def test_past_its_budget_a_call_is_refused_at_once_and_leaves_connections_clean(redis_client):
    redis_client.set(KEYS[1], "kept")
    with request_budget(0.0):
        with pytest.raises(RedisNotWaited):
            redis_client.get(KEYS[1])
        with pytest.raises(RedisNotWaited):
            mget_across_slots(redis_client, KEYS)
        pipe = redis_client.pipeline(transaction=False)
        pipe.get(KEYS[1])
        pipe.get(KEYS[2])
        with pytest.raises(RedisNotWaited):
            pipe.execute()
    # No reply was left unread on a pooled connection to answer the next command.
    assert redis_client.get(KEYS[1]) == b"kept"
    assert mget_across_slots(redis_client, KEYS)[1] == b"kept"


def test_the_budget_counts_waiting_for_redis_not_time_spent_elsewhere(redis_client):
    with request_budget(0.2):
        time.sleep(0.3)  # ranking, validating a large batch: a healthy request keeps its budget
        assert redis_client.set(KEYS[0], "set")
        assert mget_across_slots(redis_client, KEYS)[0] == b"set"


def test_a_plain_url_naming_a_cluster_node_is_refused_at_start(redis_cluster, tmp_path):
    node = redis_cluster.nodes[0]
    wanted = f"{CLUSTER_SCHEME}{node.host}:{node.port}"
    with pytest.raises(RuntimeError, match=re.escape(wanted)):
        create_app({"redis_url": node.url, "jwt_secret": TEST_SECRET, "reindex_mode": "thread"})
    # `newsfeed serve` says so before starting gunicorn, whose workers would fail to boot.
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFEED_")}
    environ.update(
        NEWSFEED_REDIS_URL=node.url,
        NEWSFEED_JWT_SECRET=TEST_SECRET,
        NEWSFEED_DATA_DIR=str(tmp_path / "var"),
        NEWSFEED_PORT=str(free_port()),
    )
    served = subprocess.run(
        [NEWSFEED, "serve"], env=environ, capture_output=True, text=True, timeout=60
    )
    assert served.returncode != 0
    assert f"NEWSFEED_REDIS_URL: the Redis at {node.host}:{node.port}" in served.stderr
    assert wanted in served.stderr
