"""The service graph, built once per process from Settings: the web app, the jobs worker and
the CLI all use it, so each gets exactly the same feed service, model keeper and verifier."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

from config import Settings
from feed import jobs
from feed.corpus.ingest import Corpus
from feed.experiments.buffer import ExposureBuffer
from feed.model.keeper import ModelKeeper
from feed.model.learned_store import LearnedModels
from feed.model.migrate import upgrade
from feed.readers.events import EventLog
from feed.readers.popularity import Popularity
from feed.readers.tokens import TokenVerifier
from feed.serving.cursor import CursorCodec
from feed.serving.observer import FeedObserver
from feed.serving.service import FeedService
from feed.serving.variants import Variants
from feed.storage.connection import open_redis, refuse_cluster_node
from recommender.tfidf import TfidfRanker

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    redis: redis.Redis
    keeper: ModelKeeper
    corpus: Corpus
    feed: FeedService
    events: EventLog
    tokens: TokenVerifier
    exposures: ExposureBuffer  # experiment exposures of pages served, written by its thread

    def close(self) -> None:
        """Stop the keeper's thread, write the buffered exposures and close the connections
        (a worker or a CLI command)."""
        self.keeper.stop()
        self.exposures.close()
        self.redis.close()


def build_services(settings: Settings, *, observer: FeedObserver | None = None) -> Services:
    """Every service on one Redis client. ``observer`` hears of each page served and each
    feed build (the web layer's metrics). With ``auto_reindex`` off the keeper only loads
    models."""
    client = open_redis(
        settings.redis_url,
        socket_timeout=settings.redis_socket_timeout,
        connect_timeout=settings.redis_connect_timeout,
    )
    try:
        refuse_cluster_node(client, settings.redis_url)
    except RuntimeError:
        client.close()
        raise
    _upgrade_layout(client)
    keeper = ModelKeeper(
        client,
        live_window_days=settings.live_window_days,
        poll_seconds=settings.model_poll_seconds,
        auto_reindex=settings.auto_reindex,
        request_reindex=jobs.reindex_requester(settings),  # queue mode: a worker fits
        share_dir=settings.model_share_dir,
    )
    popularity = Popularity(client, settings.popularity_half_life_hours)
    exposures = ExposureBuffer(client)
    feed = FeedService(
        client,
        keeper,
        Variants(
            client, TfidfRanker(half_life_hours=settings.freshness_half_life_hours), exposures
        ),
        popularity,
        CursorCodec(settings.cursor_secret or settings.jwt_secret),
        feed_size=settings.feed_size,
        feed_ttl=settings.feed_ttl_seconds,
        cursor_ttl=settings.cursor_ttl_seconds,
        observer=observer,
        learned=LearnedModels(client, settings.model_poll_seconds),
    )
    return Services(
        settings=settings,
        redis=client,
        keeper=keeper,
        corpus=Corpus(client, keeper),
        feed=feed,
        events=EventLog(client, popularity),
        tokens=TokenVerifier(settings),
        exposures=exposures,
    )


def _upgrade_layout(client: redis.Redis) -> None:
    """Every process that serves brings an older store to the current key layout first
    (idempotent, one GET once done), so a store upgraded by starting gunicorn directly, not
    through `newsfeed serve`, never serves cards without their bodies. A Redis down now is
    answered 503 meanwhile; the next process to start moves the keys."""
    try:
        upgrade(client)
    except redis.RedisError as exc:
        log.warning("could not check the store's key layout at start: %s", exc)
