"""Opens the service's Redis connections: one place that knows single node from cluster."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# A URL with this scheme names a Redis Cluster (any node; the client discovers the rest).
CLUSTER_SCHEME = "redis+cluster://"
# Clients check an idle pooled connection with a PING after this many seconds before using it.
HEALTH_CHECK_SECONDS = 30


def is_cluster(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEME)


def open_redis(url: str, *, socket_timeout: float, connect_timeout: float) -> redis.Redis:
    """A bytes-mode client for ``url``.

    One immediate retry reconnects a pooled connection a Redis restart broke; no backoff:
    while Redis is down or loading, the request answers 503 at once and the client retries.
    """
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        health_check_interval=HEALTH_CHECK_SECONDS,
        retry=Retry(NoBackoff(), 1),
    )
