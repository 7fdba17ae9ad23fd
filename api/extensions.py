"""The clients and services built once per app, and the one accessor views use to reach them."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import current_app

from api.tokens import TokenVerifier
from config import Settings
from feed.events import EventLog
from feed.ingest import Corpus
from feed.model_keeper import ModelKeeper
from feed.service import FeedService

EXTENSION = "newsfeed"


@dataclass
class Services:
    settings: Settings
    redis: redis.Redis
    keeper: ModelKeeper
    corpus: Corpus
    feed: FeedService
    events: EventLog
    tokens: TokenVerifier


def services() -> Services:
    found: Services = current_app.extensions[EXTENSION]
    return found
