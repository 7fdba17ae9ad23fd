"""Fixtures: a real throwaway redis-server (and Redis Cluster) for the session, the app, a
client and tokens.

The modules in CLUSTER_MODULES run every test twice: on a single redis-server and on a local
three-master Redis Cluster, through the same code (feed/storage/connection.py picks the client).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from api import create_app
from api.extensions import EXTENSION
from devtools.redis_server import RedisServer
from feed.readers.tokens import issue_token
from feed.services import Services
from feed.storage.connection import open_redis
from tests.feedserver import LOCAL_FEEDS
from tests.redis_cluster import LocalCluster

TEST_SECRET = "test-secret-that-is-long-enough-for-hs256"
CLUSTER_MODULES = {
    "test_articles",
    "test_buffer",
    "test_connection",
    "test_etag",
    "test_events",
    "test_experiments",
    "test_feed",
    "test_feed_cache",
    "test_feed_cursors",
    "test_feed_experiments",
    "test_limits",
    "test_popularity",
    "test_subscriptions",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rpartition(".")[2]
    if module in CLUSTER_MODULES and "redis_url" in metafunc.fixturenames:
        metafunc.parametrize("redis_url", ["single", "cluster"], indirect=True)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis"), appendonly=False) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture
def redis_url(request: pytest.FixtureRequest) -> str:
    """The Redis this test runs on: the single server, or the cluster when parametrized so."""
    if getattr(request, "param", "single") == "cluster":
        cluster: LocalCluster = request.getfixturevalue("redis_cluster")
        return cluster.url
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = open_redis(redis_url, socket_timeout=5, connect_timeout=5)
    client.flushall()
    yield client
    client.flushall()
    client.close()


@pytest.fixture
def settings_overrides(redis_url: str) -> dict[str, object]:
    # Thread mode: the app fits by itself, so tests need no worker (tests/test_jobs.py runs one).
    return {
        "redis_url": redis_url,
        "jwt_secret": TEST_SECRET,
        "model_poll_seconds": 0.02,
        "reindex_mode": "thread",
        "fetch_allow": LOCAL_FEEDS,
    }


@pytest.fixture
def make_app(
    settings_overrides: dict[str, object], redis_client: redis.Redis
) -> Iterator[Callable[..., Flask]]:
    """Apps with more settings; each one's model keeper, exposure buffer and Redis pool are
    closed after (so no exposure is written into the next test's store)."""
    made: list[Flask] = []

    def make(**overrides: object) -> Flask:
        app = create_app({**settings_overrides, **overrides})
        app.config["TESTING"] = True
        made.append(app)
        return app

    yield make
    for app in made:
        svc: Services = app.extensions[EXTENSION]
        svc.close()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def services(app: Flask) -> Services:
    found: Services = app.extensions[EXTENSION]
    return found


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class Tokens:
    """Authorization headers for any user, as the token CLI would sign them."""

    def __init__(self, services: Services) -> None:
        self._settings = services.settings

    def user(self, user_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(self._settings, user_id)}"}

    def admin(self, user_id: str = "editor") -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(self._settings, user_id, admin=True)}"}


@pytest.fixture
def tokens(services: Services) -> Tokens:
    return Tokens(services)
