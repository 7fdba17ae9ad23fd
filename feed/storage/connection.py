"""Opens the service's Redis connections: one place that knows single node from cluster."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import Connection, ConnectionPool
from redis.exceptions import AskError, ClusterDownError, MovedError, TryAgainError
from redis.retry import Retry

from feed.storage.deadline import BudgetedLock, bounded_connection_class

# A URL with this scheme names a Redis Cluster (any node; the client discovers the rest).
CLUSTER_SCHEME = "redis+cluster://"
# Clients check an idle pooled connection with a PING after this many seconds before using it.
HEALTH_CHECK_SECONDS = 30


def is_cluster(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEME)


def refuse_cluster_node(r: redis.Redis, url: str) -> None:
    """Refuse a plain URL that names a Redis Cluster node: a single-node client would get MOVED
    for most keys (a 500 on writes). Said at start, with the scheme that works. A Redis that
    does not answer now cannot be told apart; the service starts and answers 503 meanwhile."""
    if is_cluster(url):
        return
    try:
        enabled = r.info("cluster").get("cluster_enabled")
    except redis.RedisError:
        return
    if enabled:
        kwargs = r.connection_pool.connection_kwargs
        where = (
            f"{kwargs.get('host')}:{kwargs.get('port')}"  # never the URL: it may hold a password
        )
        raise RuntimeError(
            f"the Redis at {where} is a Redis Cluster node: name the cluster with a "
            f"{CLUSTER_SCHEME} URL (e.g. {CLUSTER_SCHEME}{where}), not redis://"
        )


def open_redis(url: str, *, socket_timeout: float, connect_timeout: float) -> redis.Redis:
    """A bytes-mode client for ``url``: a ``RedisCluster`` when the URL names a cluster.

    Both offer the same command API; modules annotate ``redis.Redis`` and work with either,
    because every multi-key command and script they send stays within one hash slot.

    One immediate retry reconnects a pooled connection a Redis restart broke; no backoff:
    while Redis is down or loading, the request answers 503 at once and the client retries.
    Its connections bound every wait (feed/storage/deadline.py): within a request's budget, so
    a retry after a timeout only waits if the budget has time left, and never on a node seen
    frozen. The pools never block: past their connection limit they refuse at once.
    """
    options = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "health_check_interval": HEALTH_CHECK_SECONDS,
        "retry": Retry(NoBackoff(), 1),
        "connection_class": bounded_connection_class(url.removeprefix(CLUSTER_SCHEME)),
    }
    if is_cluster(url):
        cluster = RedisCluster.from_url("redis://" + url.removeprefix(CLUSTER_SCHEME), **options)
        # After a connection error or timeout, the client refreshes its slot map under this
        # lock, asking node after node; a request must not queue behind it past its budget.
        manager = cluster.nodes_manager
        manager._initialization_lock = BudgetedLock(manager._initialization_lock)
        client: redis.Redis = cluster
        return client
    return redis.Redis.from_url(url, **options)


def slot_mget(pipe: Pipeline, keys: Sequence[str]) -> Any:
    """MGET of keys that share one slot on a pipeline: queued, or answered at once between
    WATCH and MULTI.

    redis-py's cluster pipeline refuses its ``mget`` method even when every key shares a slot
    (where Redis itself accepts the command), so it is sent as a plain command.
    """
    return pipe.execute_command("MGET", *keys)


def slot_eval(pipe: Pipeline, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """EVAL a script whose keys share one slot, on a pipeline (the cluster pipeline refuses its
    ``eval`` method as it does ``mget``)."""
    return pipe.execute_command("EVAL", script, len(keys), *keys, *args)


# Replies that mean the client's slot map is out of date (resharding, failover), and a broken
# pooled connection: the cluster client's own path handles both (redirects, refresh, retry).
_USE_CLIENT_PATH = (
    MovedError,
    AskError,
    TryAgainError,
    ClusterDownError,
    redis.ConnectionError,
    redis.TimeoutError,
)


def mget_across_slots(r: redis.Redis, keys: Sequence[str]) -> list[Any]:
    """MGET of keys in several slots, in one round trip: a plain MGET on a single Redis.

    On a cluster, one MGET per slot, all sent to their nodes before any reply is read. This is
    what ``mget_nonatomic`` does too, but through a cluster pipeline that costs as much CPU as
    the rest of a cached feed request (139 vs 82 µs measured with the versions and a page on
    one node). When a node answers with a redirection or a connection fails, the read goes
    the cluster client's way, which follows redirections, refreshes its map and retries.
    """
    if not isinstance(r, RedisCluster):
        return list(r.mget(keys))
    plan: dict[str, tuple[ClusterNode, dict[int, list[int]]]] = {}
    for index, key in enumerate(keys):
        slot = r.keyslot(key)
        node = r.nodes_manager.get_node_from_slot(slot)
        plan.setdefault(node.name, (node, {}))[1].setdefault(slot, []).append(index)
    found: list[Any] = [None] * len(keys)
    held: list[tuple[ConnectionPool, Connection]] = []
    clean = False
    try:
        for node, slots in plan.values():
            pool = r.get_redis_connection(node).connection_pool
            connection = pool.get_connection()
            held.append((pool, connection))
            commands = [("MGET", *(keys[i] for i in indexes)) for indexes in slots.values()]
            connection.send_packed_command(connection.pack_commands(commands))
        for (_, connection), (_, slots) in zip(held, plan.values(), strict=True):
            for indexes in slots.values():
                for index, value in zip(indexes, connection.read_response(), strict=True):
                    found[index] = value
        clean = True
    except _USE_CLIENT_PATH:
        pass
    finally:
        for pool, connection in held:
            if not clean:  # replies may be left unread on it
                connection.disconnect()
            pool.release(connection)
    return found if clean else list(r.mget_nonatomic(keys))
