"""The learned ranker in the service: trained from the event stream by `newsfeed train`,
published behind its gate, loaded by every web process, and served to an experiment's
variant."""

from __future__ import annotations

import hashlib
import random
import time
from datetime import datetime

import pytest
import redis
from click.testing import CliRunner

from cli import cli
from cli.worker import runtime_for
from feed import jobs
from feed.model import learned_store
from feed.model.learned_store import LearnedModels
from feed.model.learning import train_and_publish
from recommender.features import FEATURES, POSITION_FEATURE
from recommender.linear import LinearModel
from recommender.tfidf import TfidfRanker
from tests.conftest import TEST_SECRET
from tests.factories import demo_corpus

EXPERIMENT = {
    "name": "learned-only",
    # Two variants are the least an experiment has: nearly everyone is on the learned one.
    "variants": [
        {"name": "control", "ranker": "tfidf", "params": {}, "weight": 1},
        # Outside articles uncapped, so that a freshness-only model shows plainly.
        {
            "name": "learned",
            "ranker": "learned",
            "params": {"max_outside_share": 1},
            "weight": 9999,
        },
    ],
    "traffic": 1.0,
}


def freshness_only() -> LinearModel:
    names = (*FEATURES, POSITION_FEATURE)
    coef = tuple(1.0 if name == "freshness" else 0.0 for name in names)
    return LinearModel(names, coef, (0.0,) * len(names), (1.0,) * len(names), 0.0, {"x": 1})


def feed(client, tokens, user, follows=("tech",), limit=20):
    headers = tokens.user(user)
    client.put(f"/v1/users/{user}/categories", json={"categories": list(follows)}, headers=headers)
    response = client.get(f"/v1/users/{user}/feed?limit={limit}", headers=headers)
    assert response.status_code == 200
    return response.json


@pytest.fixture
def learned_variant(client, tokens):
    admin = tokens.admin()
    articles = demo_corpus(client, admin, 300)
    assert client.post("/v1/experiments", json=EXPERIMENT, headers=admin).status_code == 201
    assert client.post("/v1/experiments/learned-only/start", headers=admin).status_code == 200
    return articles


def test_the_learned_variant_ranks_as_tfidf_until_a_model_is_published(
    client, tokens, learned_variant
):
    served = feed(client, tokens, "reader-1")
    assert served["variant"] == "learned"
    # The tfidf ranker's reasons: nothing here says "Popular" or names a freshness weight.
    assert all(item["reason"].startswith("Because you follow") for item in served["items"])


def test_a_published_model_reaches_the_feed_and_its_reasons(
    client, tokens, services, redis_client, learned_variant
):
    version = learned_store.publish(redis_client, freshness_only())
    assert version == 1
    served = feed(client, tokens, "reader-2", follows=("tech", "science"), limit=30)
    items = served["items"]
    published = [datetime.fromisoformat(item["published_at"]) for item in items]
    assert published == sorted(published, reverse=True)  # freshness is all this model weighs
    newest = max(datetime.fromisoformat(str(a["published_at"])) for a in learned_variant)
    assert published[0] == newest  # across every category, followed or not
    assert all(item["reason"].startswith("Latest in ") for item in items)


def test_a_newly_published_model_replaces_cached_learned_feeds(
    client, tokens, services, redis_client, learned_variant
):
    headers = tokens.user("reader-3")
    first = feed(client, tokens, "reader-3", follows=("tech", "science"), limit=30)
    assert first["variant"] == "learned"
    cached = client.get("/v1/users/reader-3/feed?limit=30", headers=headers)
    assert cached.headers["X-Feed-Cache"] == "hit"

    learned_store.publish(redis_client, freshness_only())
    time.sleep(0.05)  # past the test settings' model poll interval (0.02 s)
    served = client.get("/v1/users/reader-3/feed?limit=30", headers=headers)
    assert served.headers["X-Feed-Cache"] == "miss"
    assert all(item["reason"].startswith("Latest in ") for item in served.json["items"])


def test_every_process_picks_up_a_new_version_and_ignores_unreadable_ones(redis_client):
    clock = [0.0]
    models = LearnedModels(redis_client, refresh_seconds=5.0, clock=lambda: clock[0])
    assert models.current() is None
    learned_store.publish(redis_client, freshness_only())
    assert models.current() is None  # checked less than 5 s ago
    clock[0] = 5.0
    assert models.current() == freshness_only()
    redis_client.set(learned_store.ARTIFACT_KEY % 2, b"\x80\x04pickled")
    redis_client.set(learned_store.CURRENT_KEY, 2)
    clock[0] = 10.0
    assert models.current() == freshness_only()  # an unreadable artifact: the copy in hand
    assert learned_store.load(redis_client) is None


def test_publishing_retires_the_previous_artifact(redis_client):
    first = learned_store.publish(redis_client, freshness_only())
    second = learned_store.publish(redis_client, freshness_only())
    assert (first, second) == (1, 2)
    assert redis_client.ttl(learned_store.ARTIFACT_KEY % 1) > 0
    assert redis_client.ttl(learned_store.ARTIFACT_KEY % 2) == -1
    assert learned_store.load(redis_client) == (2, freshness_only())


# ---------------------------------------------------------------------------------------------
# Training from the stream


def appealing(article_id: str) -> bool:
    """A hidden quarter of the articles that readers take to."""
    return hashlib.sha1(article_id.encode()).digest()[0] < 64


def read_with_clicks(client, tokens, readers: int, sessions: int, seed: int = 3) -> None:
    """Readers of tech and science scroll 15 items and click appealing ones, more often near
    the top: events go through the API with feed_id and position."""
    rng = random.Random(seed)
    for session in range(sessions):
        for n in range(readers):
            user = f"clicker-{n}"
            headers = tokens.user(user)
            if session == 0:
                client.put(
                    f"/v1/users/{user}/categories",
                    json={"categories": ["tech", "science"]},
                    headers=headers,
                )
            body = client.get(f"/v1/users/{user}/feed?limit=15", headers=headers).json
            events = []
            for position, item in enumerate(body["items"]):
                base = {"user_id": user, "article_id": item["id"], "feed_id": body["feed_id"]}
                events.append({**base, "type": "impression", "position": position})
                chance = (0.6 if appealing(item["id"]) else 0.05) / (1 + position) ** 0.3
                if rng.random() < chance:
                    events.append({**base, "type": "click", "position": position})
            response = client.post("/v1/events", json={"events": events}, headers=headers)
            assert response.status_code == 202


@pytest.fixture
def cli_env(monkeypatch, redis_url, tmp_path):
    monkeypatch.setenv("NEWSFEED_REDIS_URL", redis_url)
    monkeypatch.setenv("NEWSFEED_JWT_SECRET", TEST_SECRET)
    monkeypatch.setenv("NEWSFEED_DATA_DIR", str(tmp_path / "var"))


def test_newsfeed_train_publishes_a_model_that_beats_tfidf(client, tokens, redis_client, cli_env):
    demo_corpus(client, tokens.admin(), 600)
    read_with_clicks(client, tokens, readers=60, sessions=8)
    result = CliRunner().invoke(cli, ["train"])
    assert result.exit_code == 0, result.output
    assert "published learned model 1" in result.output
    assert "validation AUC" in result.output and "weights (standardized): " in result.output
    version, model = learned_store.load(redis_client) or (0, None)
    assert version == 1 and model is not None
    meta = model.meta
    assert meta["validation_auc"] >= meta["baseline_auc"]
    assert meta["events"] > meta["impressions"] > meta["clicks"] > 0
    assert model.weights()["ctr"] > 0  # the appealing articles are the clicked ones
    outcome = learned_store.last_outcome(redis_client)
    assert outcome is not None and outcome["published"] == 1 and outcome["serving"] == 1


def test_too_few_events_keep_the_tfidf_weights_and_say_so(client, tokens, cli_env):
    demo_corpus(client, tokens.admin(), 100)
    read_with_clicks(client, tokens, readers=2, sessions=2)
    result = CliRunner().invoke(cli, ["train"])
    assert result.exit_code == 0, result.output
    assert "not published: too few clicks" in result.output
    assert "serving keeps the tfidf weights (no learned model is published)" in result.output


def test_one_process_trains_at_a_time(client, tokens, services, redis_client: redis.Redis):
    demo_corpus(client, tokens.admin(), 100)
    redis_client.set(learned_store.LEASE_KEY, "someone-else", px=60_000)
    loaded = services.keeper.loaded
    assert loaded is not None
    outcome = train_and_publish(redis_client, loaded.model, TfidfRanker())
    assert not outcome.won and outcome.reason == "another process is training"
    assert redis_client.get(learned_store.LEASE_KEY) == b"someone-else"


# ---------------------------------------------------------------------------------------------
# The worker's schedule, and what /readyz and /metrics say


def test_a_worker_trains_once_enough_events_arrived_and_reports_say_which_model(
    client, tokens, services, redis_client
):
    demo_corpus(client, tokens.admin(), 100)
    read_with_clicks(client, tokens, readers=3, sessions=2)
    ready = client.get("/readyz").json
    assert ready["learned"] == {"serving": None, "last_training": None}
    with runtime_for(services.settings) as runtime:
        jobs.install(runtime)
        try:
            assert jobs.train_job(events_needed=10**9, every_seconds=0) == {
                "trained": False,
                "reason": "not due",
            }
            done = jobs.train_job(events_needed=50, every_seconds=0)
            assert done["trained"] and done["events"] > 50 and done["published"] is None
            # The mark moved to the events it trained on: nothing new, nothing due.
            assert jobs.train_job(events_needed=50, every_seconds=0)["reason"] == "not due"
            assert jobs.train_job(events_needed=0, every_seconds=3600)["reason"] == "not due"
        finally:
            jobs.install(None)
    last = client.get("/readyz").json["learned"]["last_training"]
    assert last["reason"].startswith("too few clicks") and last["serving"] is None
    scrape = client.get("/metrics").get_data(as_text=True)
    assert "newsfeed_learned_model_version 0.0" in scrape
    assert "newsfeed_learned_last_training_published 0.0" in scrape

    learned_store.publish(redis_client, freshness_only())
    serving = client.get("/readyz").json["learned"]["serving"]
    assert serving["version"] == 1 and serving["weights"]["freshness"] == 1.0
    scrape = client.get("/metrics").get_data(as_text=True)
    assert "newsfeed_learned_model_version 1.0" in scrape
    assert 'newsfeed_learned_weight{feature="freshness"} 1.0' in scrape


def test_the_workers_look_for_due_trainings_on_a_timer(redis_client):
    tasks = {
        task.name: task
        for task in jobs.periodic_tasks(redis_client, reindex_seconds=0, poll_seconds=0)
    }
    assert tasks["train-learned"].every_seconds == jobs.LEARNED_CHECK_SECONDS
