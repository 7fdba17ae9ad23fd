"""Fixtures: a real throwaway redis-server for the session, the app, a client and tokens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from api import create_app
from api.extensions import EXTENSION, Services
from api.tokens import issue_token
from feed.redis_server import RedisServer

TEST_SECRET = "test-secret-that-is-long-enough-for-hs256"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis"), appendonly=False) as server:
        yield server


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.flushall()
    client.close()


@pytest.fixture
def settings_overrides(redis_server: RedisServer) -> dict[str, object]:
    return {"redis_url": redis_server.url, "jwt_secret": TEST_SECRET, "model_poll_seconds": 0.02}


@pytest.fixture
def app(settings_overrides: dict[str, object], redis_client: redis.Redis) -> Iterator[Flask]:
    app = create_app(settings_overrides)
    app.config["TESTING"] = True
    yield app
    svc: Services = app.extensions[EXTENSION]
    svc.keeper.stop()
    svc.redis.close()


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
