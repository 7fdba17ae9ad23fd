"""Moves data stored under the key layout before Redis Cluster support (0.1 without hash tags
on the corpus) to the current one, so an upgrade keeps every acknowledged write.

Each key is renamed (RENAMENX: a key already in the new layout is never overwritten), so the
upgrade is idempotent and safe to run from every process at once. It runs only on a single
Redis: the old layout never ran on a cluster.
"""

from __future__ import annotations

import logging
import re

import redis
from redis.cluster import RedisCluster

from feed import experiments, sources
from feed.corpus import articles, categories
from feed.model import store as model_store
from feed.model import versions

log = logging.getLogger(__name__)

# Present in every old store that holds a corpus; its absence makes the check one EXISTS.
OLD_MARKERS = ("nf:articles:by_time", "nf:corpus:version", "nf:model:current", "nf:categories")
SCAN_BATCH = 1000

_FIXED = {
    "nf:articles:by_time": articles.TIMELINE_KEY,
    "nf:corpus:deleted": articles.DELETED_KEY,
    "nf:corpus:version": versions.CORPUS_VERSION_KEY,
    "nf:model:current": versions.MODEL_CURRENT_KEY,
    "nf:categories": categories.NAMES_KEY,
    "nf:categories:counts": categories.COUNTS_KEY,
    "nf:experiments": experiments.DEFS_KEY,
    "nf:experiments:running": experiments.RUNNING_KEY,
    "nf:sources": sources.SOURCES_KEY,
    "nf:sources:state": sources.STATE_KEY,
    "nf:sources:due": sources.DUE_KEY,
}
# (pattern to SCAN, regex over the old name, its new name from the regex's groups)
_FAMILIES = (
    ("nf:article:{*}", re.compile(r"nf:article:\{(.+)\}"), lambda m: articles.CARD_KEY % m[1]),
    (
        "nf:article:{*}:body",
        re.compile(r"nf:article:\{(.+)\}:body"),
        lambda m: articles.BODY_KEY % m[1],
    ),
    ("nf:url:*", re.compile(r"nf:url:([0-9a-f]+)"), lambda m: articles.URL_KEY % m[1]),
    ("nf:model:*", re.compile(r"nf:model:(\d+)"), lambda m: model_store.ARTIFACT_KEY % int(m[1])),
    (
        "nf:model:*:meta",
        re.compile(r"nf:model:(\d+):meta"),
        lambda m: model_store.META_KEY % int(m[1]),
    ),
    # One hash per experiment becomes its first counter shard; counts() sums the shards.
    (
        "nf:exp:{*}:counts",
        re.compile(r"nf:exp:\{([^:}]+)\}:counts"),
        lambda m: experiments.COUNTS_KEY % (m[1], 0),
    ),
)


def upgrade(r: redis.Redis) -> int:
    """Rename every old-layout key to its current name; answers how many were moved."""
    if isinstance(r, RedisCluster) or not r.exists(*OLD_MARKERS):
        return 0
    moved = sum(_rename(r, old, new) for old, new in _FIXED.items())
    for pattern, regex, new_name in _FAMILIES:
        for raw in r.scan_iter(match=pattern, count=SCAN_BATCH):
            match = regex.fullmatch(raw.decode())
            if match is not None:
                moved += _rename(r, match[0], new_name(match))
    log.warning("moved %s keys from the old layout to the current one", moved)
    return moved


def _rename(r: redis.Redis, old: str, new: str) -> int:
    try:
        return int(bool(r.renamenx(old, new)))
    except redis.ResponseError:  # no such key (another process moved it first)
        return 0
