"""Moves data stored under older key layouts to the current one, so an upgrade keeps every
acknowledged write. Two steps, each idempotent and safe to run from every process at once:

- From 0.1 (no hash tag on the corpus): each key is renamed (RENAMENX: a key already in the
  new layout is never overwritten). Runs only on a single Redis: 0.1 never ran on a cluster.
- Bodies split from cards: an article's body was ``nf:{corpus}:article:<id>:body``, which is
  also the card of the article ``<id>:body``. Each such key is decided by the article ids
  stored (the timeline) and moved to ``nf:{corpus}:body:<id>`` or left as a card, by a script
  per key, in the corpus's slot (so it works on a cluster too). A marker then records that
  the corpus has the current layout, so later starts cost one GET.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import redis
from redis.cluster import RedisCluster

from feed import experiments, sources
from feed.corpus import articles, categories
from feed.ids import is_valid_id
from feed.model import store as model_store
from feed.model import versions
from feed.storage.connection import slot_eval

log = logging.getLogger(__name__)

LAYOUT_KEY = "nf:{corpus}:layout"  # the corpus layout this store was brought to (an integer)
LAYOUT = 2  # 2: bodies under nf:{corpus}:body:<id>, apart from cards

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


# Before the split, where the body of "x" was also the card of "x:body". Read only here.
BODY_BEFORE_SPLIT = "nf:{corpus}:article:%s:body"
# KEYS: that key for X, the body of X now, the timeline; ARGV: X, "X:body". Answers 0: left,
# a card of "X:body"; 1: moved, a body of X; 2: moved, and the card of "X:body" (a stored
# article too) was lost to it before; 3: left, and X's body was lost to it before. Where both
# ids are stored, the value tells which was written last. A body already in its new place
# was written after this one, by the current version, and wins.
_SPLIT = """
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
local x_stored = redis.call('ZSCORE', KEYS[3], ARGV[1])
local outcome = 1
if redis.call('ZSCORE', KEYS[3], ARGV[2]) then
  local ok, card = pcall(cjson.decode, value)
  if (ok and type(card) == 'table' and card['id'] == ARGV[2]) or not x_stored then
    if x_stored and redis.call('EXISTS', KEYS[2]) == 0 then return 3 end
    return 0
  end
  outcome = 2
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('DEL', KEYS[1])
else
  redis.call('RENAME', KEYS[1], KEYS[2])
end
return outcome
"""


def upgrade(r: redis.Redis) -> int:
    """Bring every older-layout key to its current name; answers how many were moved."""
    return _from_untagged(r) + _split_bodies(r)


def _from_untagged(r: redis.Redis) -> int:
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


def _split_bodies(r: redis.Redis) -> int:
    done = r.get(LAYOUT_KEY)
    if done is not None and int(done) >= LAYOUT:
        return 0
    moved = 0
    for batch in _batches(_bodies_before_split(r), SCAN_BATCH):
        pipe = r.pipeline(transaction=False)
        for key, article_id in batch:
            slot_eval(
                pipe,
                _SPLIT,
                [key, articles.BODY_KEY % article_id, articles.TIMELINE_KEY],
                [article_id, f"{article_id}:body"],
            )
        for (_, article_id), outcome in zip(batch, pipe.execute(), strict=True):
            moved += outcome in (1, 2)
            if outcome in (2, 3):
                lost = f"card of {article_id}:body" if outcome == 2 else f"body of {article_id}"
                log.warning(
                    "the %s had been overwritten before this upgrade (the ids %r and %r shared "
                    "a key); send that article again",
                    lost,
                    article_id,
                    f"{article_id}:body",
                )
    r.set(LAYOUT_KEY, LAYOUT)
    if moved:
        log.warning("moved %s article bodies apart from the cards", moved)
    return moved


def _bodies_before_split(r: redis.Redis) -> Iterator[tuple[str, str]]:
    """(key, X) for each key named like the body of a valid id X before the split."""
    prefix, suffix = BODY_BEFORE_SPLIT.split("%s")
    for raw in _scan_corpus(r, BODY_BEFORE_SPLIT % "*"):
        key = raw.decode()
        article_id = key[len(prefix) : -len(suffix)]
        if is_valid_id(article_id):
            yield key, article_id


def _scan_corpus(r: redis.Redis, match: str) -> Iterator[bytes]:
    """Keys of the corpus's slot matching ``match``: on a cluster, only its node is scanned."""
    if isinstance(r, RedisCluster):
        node = r.get_node_from_key(articles.TIMELINE_KEY)
        return r.scan_iter(match=match, count=SCAN_BATCH, target_nodes=node)
    return r.scan_iter(match=match, count=SCAN_BATCH)


def _batches(items: Iterator[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    batch: list[tuple[str, str]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
