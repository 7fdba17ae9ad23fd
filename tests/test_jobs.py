"""Background jobs (feed.jobs, feed.jobs.periodic, feed.readers.activity) run by a real RQ worker.

The worker is rq's SimpleWorker in burst mode, in this process (RQ installs signal handlers,
so it runs on the main thread); the web side is the app in queue mode, so it only enqueues.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from rq import SimpleWorker
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from api import create_app
from api.extensions import EXTENSION
from cli.worker import runtime_for
from config import Settings
from devtools.redis_server import RedisServer
from feed import jobs
from feed.corpus import articles
from feed.corpus.articles import Article
from feed.jobs import Runtime, periodic, precompute, status
from feed.jobs.periodic import Periodic
from feed.model import store as model_store
from feed.model import versions
from feed.readers import activity
from feed.services import Services
from feed.storage import locks
from recommender.model import CorpusModel
from tests.conftest import TEST_SECRET
from tests.factories import article, wait_for_model
from tests.live import free_port


@pytest.fixture
def settings(redis_server: RedisServer, redis_client: redis.Redis) -> Settings:
    return Settings(
        redis_url=redis_server.url,
        jwt_secret=TEST_SECRET,
        model_poll_seconds=0.02,
        reindex_mode="queue",
        log_level="warning",
    )


@pytest.fixture
def queue_app(settings: Settings) -> Iterator[Flask]:
    """The API in queue mode: writes enqueue fits, nothing fits in this app."""
    app = create_app({"redis_url": settings.redis_url, **_overrides(settings)})
    app.config["TESTING"] = True
    yield app
    svc: Services = app.extensions[EXTENSION]
    svc.keeper.stop()
    svc.redis.close()


@pytest.fixture
def web(queue_app: Flask) -> FlaskClient:
    return queue_app.test_client()


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    with runtime_for(settings) as installed:
        jobs.install(installed)
        yield installed
        jobs.install(None)


def _overrides(settings: Settings) -> dict[str, object]:
    return {
        "jwt_secret": settings.jwt_secret,
        "model_poll_seconds": settings.model_poll_seconds,
        "reindex_mode": settings.reindex_mode,
    }


def work(queue_redis: redis.Redis) -> None:
    """Run every job queued (and every retry due) now, as `newsfeed worker --burst` does."""
    worker = SimpleWorker(
        jobs.queues(queue_redis), connection=queue_redis, serializer=JSONSerializer
    )
    worker.work(burst=True, with_scheduler=True, logging_level="WARNING")


def queued(queue_redis: redis.Redis, name: str = jobs.MAIN_QUEUE) -> list[Job]:
    return jobs.queue(queue_redis, name).get_jobs()


def write(client: FlaskClient, headers: dict[str, str], count: int = 5, **fields: object) -> None:
    batch = [article(**fields) for _ in range(count)]
    response = client.post("/v1/articles", json={"articles": batch}, headers=headers)
    assert response.status_code == 200 and not response.json["rejected"], response.json


def settle(seconds: float = 0.3) -> None:
    """Long enough for the app's model keeper (polling every 20 ms) to act on a change."""
    time.sleep(seconds)


def test_a_burst_of_writes_enqueues_one_reindex(web, tokens, runtime):
    for _ in range(5):
        write(web, tokens.admin())
    settle()
    waiting = queued(runtime.queue_redis)
    assert [j.func_name for j in waiting] == ["feed.jobs.reindex_job"]
    assert web.get("/readyz").status_code == 503  # the web process fitted nothing itself
    work(runtime.queue_redis)
    ready = wait_for_model(web)
    assert ready["model_version"] == 1 and ready["model_articles"] == 25
    settle()
    assert queued(runtime.queue_redis) == []


def test_the_api_serves_the_model_the_job_published(web, tokens, runtime):
    write(web, tokens.admin(), categories=["tech"])
    settle()
    work(runtime.queue_redis)
    wait_for_model(web)
    alice = tokens.user("alice")
    web.put("/v1/users/alice/categories/tech", headers=alice)
    response = web.get("/v1/users/alice/feed", headers=alice)
    assert response.status_code == 200 and len(response.json["items"]) == 5
    assert response.headers["X-Feed-Cache"] == "miss"


def test_a_write_during_a_fit_leads_to_one_more_fit(web, tokens, runtime):
    write(web, tokens.admin(), count=300)
    settle()

    # As soon as the fit has read the corpus (it records the version it covers), write again.
    def write_during_the_fit() -> None:
        deadline = time.monotonic() + 20
        while not runtime.queue_redis.exists(jobs.REINDEX_COVERED_KEY):
            assert time.monotonic() < deadline
            time.sleep(0.001)
        write(web, tokens.admin(), count=1)

    writer = threading.Thread(target=write_during_the_fit)
    writer.start()
    work(runtime.queue_redis)
    writer.join()
    settle()
    work(runtime.queue_redis)  # the follow-up fit, unless the first burst already ran it
    ready = wait_for_model(web)
    assert ready["model_version"] == 2, "exactly one more fit"
    assert ready["model_articles"] == 301
    settle()
    assert queued(runtime.queue_redis) == []


def test_requests_a_started_fit_covers_are_not_enqueued(runtime):
    runtime.queue_redis.set(jobs.REINDEX_COVERED_KEY, 7)
    assert jobs.request_reindex(runtime.queue_redis, 7) is None
    assert jobs.request_reindex(runtime.queue_redis, 8) is not None
    assert jobs.request_reindex(runtime.queue_redis, 9) is None  # one is pending already
    assert len(queued(runtime.queue_redis)) == 1


def test_a_fit_waits_for_another_fit_to_finish(redis_client, runtime):
    token = locks.acquire(redis_client, model_store.REINDEX_LOCK_KEY, 60_000)
    assert token is not None
    jobs.request_reindex(runtime.queue_redis, 1)
    with pytest.raises(jobs.ReindexBusy):
        jobs.run_reindex(redis_client, runtime.queue_redis, live_window_days=30, wait_seconds=0.3)
    # While it waits the request stays pending: writes meanwhile count on it.
    assert runtime.queue_redis.exists(jobs.REINDEX_PENDING_KEY)
    locks.release(redis_client, model_store.REINDEX_LOCK_KEY, token)
    outcome = jobs.run_reindex(redis_client, runtime.queue_redis, live_window_days=30, force=True)
    assert outcome.model == 1
    assert not runtime.queue_redis.exists(jobs.REINDEX_PENDING_KEY)


def test_precompute_makes_the_next_request_a_hit(web, tokens, runtime):
    write(web, tokens.admin(), count=30, categories=["tech"])
    settle()
    work(runtime.queue_redis)
    wait_for_model(web)
    readers = {name: tokens.user(name) for name in ("alice", "bob")}
    for name, headers in readers.items():
        web.put(f"/v1/users/{name}/categories/tech", headers=headers)
        assert web.get(f"/v1/users/{name}/feed", headers=headers).headers["X-Feed-Cache"] == "miss"
    carol = tokens.user("carol")  # follows, but never asked for a feed: not active
    web.put("/v1/users/carol/categories/tech", headers=carol)

    write(web, tokens.admin(), count=1, categories=["tech"])  # a new model, stale caches
    settle()
    work(runtime.queue_redis)
    ready = wait_for_model(web)
    assert ready["model_version"] == 2
    done = jobs.queue(runtime.queue_redis, jobs.PRECOMPUTE_QUEUE).finished_job_registry
    results = [
        Job.fetch(i, runtime.queue_redis, JSONSerializer).return_value() for i in done.get_job_ids()
    ]
    assert results == [{"built": 2, "current": 0, "superseded": 0}]
    for name, headers in readers.items():
        response = web.get(f"/v1/users/{name}/feed", headers=headers)
        assert response.headers["X-Feed-Cache"] == "hit", name
        assert len(response.json["items"]) == 20
        assert any(i["published_at"] for i in response.json["items"])
    assert web.get("/v1/users/carol/feed", headers=carol).headers["X-Feed-Cache"] == "miss"


def test_precompute_records_no_exposure_and_no_activity(web, tokens, runtime, redis_client):
    write(web, tokens.admin(), count=10, categories=["tech"])
    settle()
    work(runtime.queue_redis)
    wait_for_model(web)
    experiment = {
        "name": "fresh",
        "traffic": 1.0,
        "variants": [
            {"name": "control", "ranker": "tfidf", "params": {}, "weight": 1},
            {"name": "latest", "ranker": "latest", "params": {}, "weight": 1},
        ],
    }
    admin = tokens.admin()
    assert web.post("/v1/experiments", json=experiment, headers=admin).status_code == 201
    assert web.post("/v1/experiments/fresh/start", headers=admin).status_code == 200
    activity.touch(redis_client, ["dave"], time.time() - 30)
    outcome = precompute.build(
        redis_client, runtime.feed, versions.read(redis_client).model, ["dave"]
    )
    assert outcome.built == 1
    results = web.get("/v1/experiments/fresh/results", headers=admin).json
    assert sum(v["users"] + v["pages"] for v in results["variants"]) == 0
    assert redis_client.zscore(activity.ACTIVE_KEY, "dave") < time.time() - 20
    page = web.get("/v1/users/dave/feed", headers=tokens.user("dave"))
    assert page.headers["X-Feed-Cache"] == "hit" and page.json["variant"]


def test_precompute_stops_when_a_newer_model_is_published(web, tokens, runtime, redis_client):
    write(web, tokens.admin(), count=5)
    settle()
    work(runtime.queue_redis)
    wait_for_model(web)
    outcome = precompute.build(redis_client, runtime.feed, model_version=0, user_ids=["x", "y"])
    assert (outcome.built, outcome.superseded) == (0, 2)


def test_precompute_is_split_in_chunks_for_many_workers(runtime, redis_client, monkeypatch):
    monkeypatch.setattr(precompute, "CHUNK", 4)
    now = time.time()
    activity.touch(redis_client, [f"reader-{n}" for n in range(10)], now)
    activity.touch(redis_client, ["gone"], now - 7200)
    enqueued = jobs.enqueue_precompute(
        redis_client, runtime.queue_redis, 3, since=now - 3600, limit=100
    )
    assert [len(j.args[1]) for j in enqueued] == [4, 4, 2]
    assert all(j.args[0] == 3 for j in enqueued)
    assert "gone" not in activity.recent(redis_client, 0, 100)  # trimmed on the way


def test_a_failing_job_is_retried_then_lands_in_the_failed_registry(settings, redis_server):
    # The service's Redis is down (nothing listens there); the queue's is up.
    broken = replace(
        settings, redis_url=f"redis://127.0.0.1:{free_port()}/0", queue_url=redis_server.url
    )
    with runtime_for(broken) as rt:
        jobs.install(rt)
        try:
            job = jobs.enqueue_reindex(rt.queue_redis)
            scheduled = jobs.queue(rt.queue_redis).scheduled_job_registry
            for retries_left in (2, 1, 0):
                work(rt.queue_redis)
                job.refresh()
                assert job.get_status() == JobStatus.SCHEDULED
                assert job.retries_left == retries_left
                # Due now rather than in 10 s / 1 min / 5 min.
                scheduled.schedule(job, datetime.now(UTC))
            work(rt.queue_redis)
            assert job.get_status(refresh=True) == JobStatus.FAILED
            assert job.id in jobs.queue(rt.queue_redis).failed_job_registry
            depths = status.queue_depths(rt.queue_redis)
            assert (depths["failed"], depths["queued"], depths["scheduled"]) == (1, 0, 0)
            [failed] = status.failed_jobs(rt.queue_redis)
            assert failed.id == job.id and "ConnectionError" in failed.error
        finally:
            jobs.install(None)


def test_the_retry_policy_backs_off():
    assert jobs.RETRY.max == 3 and jobs.RETRY.intervals == [10, 60, 300]


def test_a_periodic_task_runs_once_per_interval_across_workers(redis_client):
    runs: list[str] = []
    every = 0.5

    def worker_tasks(name: str) -> list[Periodic]:
        return [Periodic("reindex", every, lambda: runs.append(name))]

    # Eight workers tick at the same moment: one wins the lease.
    start = threading.Barrier(8)

    def tick(name: str) -> None:
        start.wait()
        periodic.tick(redis_client, worker_tasks(name))

    threads = [threading.Thread(target=tick, args=(f"w{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(runs) == 1
    assert periodic.tick(redis_client, worker_tasks("late")) == []
    time.sleep(every + 0.1)
    assert periodic.tick(redis_client, worker_tasks("next")) == ["reindex"]
    assert len(runs) == 2


def test_a_failed_periodic_task_is_due_again_at_once(redis_client):
    def fail() -> None:
        raise RuntimeError("queue full")

    assert periodic.tick(redis_client, [Periodic("poll", 60, fail)]) == []
    assert periodic.tick(redis_client, [Periodic("poll", 60, lambda: None)]) == ["poll"]
    assert periodic.tick(redis_client, [Periodic("off", 0, lambda: None)]) == []


def test_the_periodic_tasks_enqueue_a_forced_reindex_and_a_poll(runtime):
    tasks = jobs.periodic_tasks(
        runtime.queue_redis, reindex_seconds=60, poll_seconds=30, learned_check_seconds=0
    )
    assert periodic.tick(runtime.queue_redis, tasks) == ["reindex", "poll-sources"]
    waiting = queued(runtime.queue_redis)
    assert [j.func_name for j in waiting] == ["feed.jobs.reindex_job", "feed.jobs.poll_job"]
    assert waiting[0].kwargs == {"force": True}
    work(runtime.queue_redis)
    assert versions.read(runtime.redis).model == 1  # forced: fitted although nothing changed


def test_the_swap_is_atomic(redis_server, redis_client, runtime):
    """Readers see the old model or the new one, whole: the pointer names a version only once
    its artifact and meta are stored, and the two always agree."""
    seen: set[int] = set()
    problems: list[str] = []
    stop = threading.Event()

    def read() -> None:
        reader = redis.Redis.from_url(redis_server.url)
        while not stop.is_set():
            version = versions.read(reader).model
            found = model_store.load(reader, version) if version else None
            if version and found is None:
                problems.append(f"version {version} is current but not loadable")
            elif found is not None:
                meta, artifact = found
                size = CorpusModel.from_bytes(artifact).size
                if meta.version != version or size != meta.articles:
                    problems.append(f"version {version}: {meta}, artifact of {size} articles")
                seen.add(version)
        reader.close()

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    try:
        for size in range(1, 9):  # each model a different size: a mix would show
            articles.upsert(redis_client, [(0, Article.from_card(article(), ""))])
            jobs.enqueue_reindex(runtime.queue_redis)
            work(runtime.queue_redis)
            published = model_store.current_meta(redis_client)
            assert published is not None and published.articles == size
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert not problems, problems[:3]
    assert len(seen) > 1


def test_activity_is_recorded_on_misses_and_events_not_on_hits(web, tokens, runtime, redis_client):
    write(web, tokens.admin(), count=5, categories=["tech"])
    settle()
    work(runtime.queue_redis)
    wait_for_model(web)
    alice = tokens.user("alice")
    assert web.get("/v1/users/alice/feed", headers=alice).headers["X-Feed-Cache"] == "miss"
    first = redis_client.zscore(activity.ACTIVE_KEY, "alice")
    assert first is not None
    time.sleep(0.01)
    assert web.get("/v1/users/alice/feed", headers=alice).headers["X-Feed-Cache"] == "hit"
    assert redis_client.zscore(activity.ACTIVE_KEY, "alice") == first
    item = web.get("/v1/users/alice/feed", headers=alice).json["items"][0]
    event = {"type": "impression", "user_id": "alice", "article_id": item["id"]}
    assert web.post("/v1/events", json={"events": [event]}, headers=alice).status_code == 202
    assert redis_client.zscore(activity.ACTIVE_KEY, "alice") > first


def test_the_activity_set_is_bounded(redis_client, monkeypatch):
    monkeypatch.setattr(activity, "MAX_TRACKED", 3)
    activity.touch(redis_client, [f"u{n}" for n in range(5)], 100.0)
    activity.touch(redis_client, ["late"], 200.0)
    assert activity.count(redis_client) == 3
    assert activity.recent(redis_client, 150.0, 10) == ["late"]
    assert activity.recent(redis_client, 0.0, 1) == ["late"]


def test_the_queue_refuses_a_cluster():
    with pytest.raises(RuntimeError, match="NEWSFEED_QUEUE_URL"):
        jobs.open_queue_redis("redis+cluster://127.0.0.1:7000", socket_timeout=1, connect_timeout=1)


def test_jobs_outside_a_worker_say_so():
    with pytest.raises(RuntimeError, match="newsfeed worker"):
        jobs.poll_job()


def test_precompute_gives_way_to_a_fit_a_write_asked_for(web, tokens, runtime, redis_client):
    write(web, tokens.admin(), count=5, categories=["tech"])
    settle()
    work(runtime.queue_redis)
    wait_for_model(web)
    readers = ["alice", "bob"]
    for name in readers:
        web.put(f"/v1/users/{name}/categories/tech", headers=tokens.user(name))
    model = versions.read(redis_client).model
    write(web, tokens.admin(), count=1, categories=["tech"])  # the keeper asks for a fit
    settle()
    assert [j.func_name for j in queued(runtime.queue_redis)] == ["feed.jobs.reindex_job"]
    # The worker's precompute for the model about to be replaced stops: the fit goes first.
    outcome = jobs.precompute_job(model, readers)
    assert (outcome["built"], outcome["superseded"]) == (0, 2)
    work(runtime.queue_redis)
    assert wait_for_model(web)["model_version"] == model + 1
