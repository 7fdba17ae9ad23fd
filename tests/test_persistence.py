"""Acknowledged follow changes survive a kill -9 of Redis with the recommended AOF settings.

A burst of follow, unfollow and replace requests through the API (the app on a private
redis-server), SIGKILL right after the last answer, a restart on the same data directory:

- ``appendfsync always``: every acknowledged change is there.
- ``appendfsync everysec``: what is lost is at most the changes acknowledged within
  ``EVERYSEC_WINDOW`` seconds before the kill. Redis normally writes the AOF before it
  answers and fsyncs it every second; it may postpone the write up to 2 s while a slow disk
  is still fsyncing. So a kill of the Redis process alone normally loses nothing (measured:
  0), and a crash of the machine loses at most the last ~1 s (2 s with a stalled disk): the
  window the README documents.

Either way the restarted data is exactly the state after some prefix of the changes: the AOF
replays in order, so no later change survives an earlier lost one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from flask import Flask

from api import create_app
from api.extensions import EXTENSION
from cli.serve import _start_embedded
from config import Settings
from devtools.demo import DEMO_CATEGORIES
from devtools.redis_server import RedisServer
from feed.readers.subscriptions import SUBS_KEY
from feed.services import Services
from tests.conftest import TEST_SECRET
from tests.live import bearer, free_port

pytestmark = pytest.mark.slow

EVERYSEC_WINDOW = 2.0
BURST_SECONDS = 3.0  # longer than the window, so some acknowledged changes are older than it
USERS = [f"reader-{n}" for n in range(8)]
SLUGS = list(DEMO_CATEGORIES)


@dataclass(frozen=True)
class Ack:
    user_id: str
    follows: frozenset[str]  # the set the answer reported after this change
    at: float  # time.monotonic() when the answer arrived


@pytest.fixture
def app_for() -> Iterator[list[Flask]]:
    """Apps built by the test, shut down (model keeper, Redis pool) afterwards."""
    apps: list[Flask] = []
    yield apps
    for app in apps:
        svc: Services = app.extensions[EXTENSION]
        svc.keeper.stop()
        svc.redis.close()


def _app(server: RedisServer, apps: list[Flask]) -> Flask:
    app = create_app({"redis_url": server.url, "jwt_secret": TEST_SECRET})
    app.config["TESTING"] = True
    apps.append(app)
    return app


def _burst(app: Flask, seconds: float) -> list[Ack]:
    """Random follow changes for USERS until ``seconds`` have passed; every answer recorded."""
    client = app.test_client()
    admin = bearer("editor", admin=True)
    for slug, name in DEMO_CATEGORIES.items():
        assert client.put(
            f"/v1/categories/{slug}", json={"name": name}, headers=admin
        ).status_code in (200, 201)
    headers = {user_id: bearer(user_id) for user_id in USERS}
    rng = random.Random(5)
    acks: list[Ack] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        user_id = rng.choice(USERS)
        base = f"/v1/users/{user_id}/categories"
        roll = rng.random()
        if roll < 0.45:
            response = client.put(f"{base}/{rng.choice(SLUGS)}", headers=headers[user_id])
        elif roll < 0.85:
            response = client.delete(f"{base}/{rng.choice(SLUGS)}", headers=headers[user_id])
        else:
            chosen = rng.sample(SLUGS, rng.randint(0, 4))
            response = client.put(base, json={"categories": chosen}, headers=headers[user_id])
        assert response.status_code == 200, response.json
        acks.append(Ack(user_id, frozenset(response.json["categories"]), time.monotonic()))
    return acks


def _state_after(acks: list[Ack], count: int) -> dict[str, frozenset[str]]:
    """Every user's follows after the first ``count`` acknowledged changes."""
    state = {user_id: frozenset[str]() for user_id in USERS}
    for ack in acks[:count]:
        state[ack.user_id] = ack.follows
    return state


def _recovered(server: RedisServer) -> dict[str, frozenset[str]]:
    with redis.Redis.from_url(server.url) as client:
        return {
            user_id: frozenset(m.decode() for m in client.smembers(SUBS_KEY % user_id))
            for user_id in USERS
        }


def _surviving_prefix(acks: list[Ack], recovered: dict[str, frozenset[str]]) -> int:
    """The longest prefix of the acknowledged changes whose result is the recovered data."""
    for count in range(len(acks), -1, -1):
        if _state_after(acks, count) == recovered:
            return count
    raise AssertionError(
        f"the recovered follows are no prefix of the acknowledged ones: {recovered}"
    )


@pytest.mark.parametrize("policy", ["always", "everysec"])
def test_acknowledged_follow_changes_survive_kill_9(
    tmp_path: Path, app_for: list[Flask], policy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = RedisServer(tmp_path / "redis", port=free_port(), appendonly=True, appendfsync=policy)
    server.start()
    try:
        acks = _burst(_app(server, app_for), BURST_SECONDS)
        server.kill()  # SIGKILL right after the last acknowledged change
        killed_at = time.monotonic()
        server.start()  # same port, same data directory: replays the AOF
        recovered = _recovered(server)
    finally:
        server.stop()
    kept = _surviving_prefix(acks, recovered)
    lost = acks[kept:]
    if policy == "always":
        assert not lost, f"{len(lost)} acknowledged changes lost with appendfsync always"
    else:
        old = [a for a in lost if killed_at - a.at > EVERYSEC_WINDOW]
        assert not old, f"lost changes acknowledged more than {EVERYSEC_WINDOW}s before the kill"
    assert len(acks) > 100
    with capsys.disabled():
        window = f" (window {EVERYSEC_WINDOW}s)" if policy == "everysec" else ""
        print(
            f"\n[persistence] appendfsync {policy}: {len(acks)} acknowledged changes in "
            f"{BURST_SECONDS}s, kill -9, {len(lost)} lost{window}"
        )


def test_the_embedded_redis_keeps_an_aof_fsynced_every_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSFEED_REDIS_URL", "")  # _start_embedded exports its URL here
    with CliRunner().isolation():
        server = _start_embedded(Settings(data_dir=str(tmp_path / "var")))
    try:
        with redis.Redis.from_url(server.url) as client:
            assert client.config_get("appendonly") == {"appendonly": "yes"}
            assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert server.data_dir == (tmp_path / "var" / "redis").absolute()
    finally:
        server.stop()
