"""Reads and scripts that work the same on one Redis and on a cluster (feed.storage.connection)."""

from __future__ import annotations

from redis.cluster import RedisCluster

from feed.storage.connection import mget_across_slots, slot_eval, slot_mget

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
