"""Opens the service's Redis connections: one place that knows single node from cluster."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.cluster import RedisCluster
from redis.retry import Retry

# A URL with this scheme names a Redis Cluster (any node; the client discovers the rest).
CLUSTER_SCHEME = "redis+cluster://"
# Clients check an idle pooled connection with a PING after this many seconds before using it.
HEALTH_CHECK_SECONDS = 30


def is_cluster(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEME)


def open_redis(url: str, *, socket_timeout: float, connect_timeout: float) -> redis.Redis:
    """A bytes-mode client for ``url``: a ``RedisCluster`` when the URL names a cluster.

    Both offer the same command API; modules annotate ``redis.Redis`` and work with either,
    because every multi-key command and script they send stays within one hash slot.

    One immediate retry reconnects a pooled connection a Redis restart broke; no backoff:
    while Redis is down or loading, the request answers 503 at once and the client retries.
    """
    options = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "health_check_interval": HEALTH_CHECK_SECONDS,
        "retry": Retry(NoBackoff(), 1),
    }
    if is_cluster(url):
        client: redis.Redis = RedisCluster.from_url(
            "redis://" + url.removeprefix(CLUSTER_SCHEME), **options
        )
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
