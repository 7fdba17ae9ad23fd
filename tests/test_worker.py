"""`newsfeed worker` and `newsfeed jobs` (cli/worker.py) as real processes, and `newsfeed serve`
starting and stopping a worker on its embedded Redis."""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import jwt
import psutil
import pytest
import redis
from click.testing import CliRunner
from flask import Flask
from rq import Worker

from api import create_app
from api.extensions import EXTENSION
from cli import cli
from cli import worker as cli_worker
from devtools.redis_server import RedisServer
from feed import jobs
from feed.corpus import articles
from feed.corpus.articles import Article
from feed.jobs import status
from feed.model import learned_store, versions
from feed.model import store as model_store
from feed.model.reindex import fit_under_lock
from feed.readers.events import STREAM_KEY
from feed.services import Services
from feed.storage.connection import open_redis
from tests.conftest import TEST_SECRET
from tests.factories import article, wait_for_model
from tests.live import bearer, free_port, serve

pytestmark = pytest.mark.slow

STARTUP_SECONDS = 30.0


@contextmanager
def worker_process(redis_url: str, log_path: Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """`newsfeed worker` on ``redis_url``, stopped with SIGTERM (a warm shutdown) on exit."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFEED_")}
    environ.update(
        NEWSFEED_REDIS_URL=redis_url,
        NEWSFEED_JWT_SECRET=TEST_SECRET,
        NEWSFEED_DATA_DIR=str(log_path.parent / "var"),
        NEWSFEED_LOG_FORMAT="text",
        NEWSFEED_MODEL_POLL_SECONDS="0.05",
        NEWSFEED_SOURCE_POLL_SECONDS="0",
    )
    environ.update(env)
    with cli_worker.worker_process(environ, log_path) as process:
        yield process


def eventually(check: Callable[[], object], what: str, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise AssertionError(f"{what} did not happen in {timeout}s\n{tail}")
        time.sleep(0.05)


def workers_alive(r: redis.Redis) -> int:
    return Worker.count(connection=r)


@pytest.fixture
def queue_app(redis_server, redis_client) -> Iterator[Flask]:
    app = create_app(
        {
            "redis_url": redis_server.url,
            "jwt_secret": TEST_SECRET,
            "model_poll_seconds": 0.02,
            "reindex_mode": "queue",
        }
    )
    yield app
    svc: Services = app.extensions[EXTENSION]
    svc.keeper.stop()
    svc.redis.close()


def test_the_worker_fits_what_the_api_enqueues_and_precomputes(
    queue_app, redis_server, redis_client, tmp_path
):
    web = queue_app.test_client()
    admin, alice = bearer("editor", admin=True), bearer("alice")
    log = tmp_path / "worker.log"
    # No periodic reindex: every fit here is one the API asked for.
    with worker_process(redis_server.url, log, NEWSFEED_REINDEX_INTERVAL_SECONDS="0") as process:
        eventually(lambda: workers_alive(redis_client) == 1, "worker registration", log)
        batch = [article(categories=["tech"]) for _ in range(40)]
        assert web.post("/v1/articles", json={"articles": batch}, headers=admin).status_code == 200
        ready = wait_for_model(web, timeout=STARTUP_SECONDS)
        assert ready["model_articles"] == 40
        web.put("/v1/users/alice/categories/tech", headers=alice)
        assert web.get("/v1/users/alice/feed", headers=alice).headers["X-Feed-Cache"] == "miss"

        more = {"articles": [article(categories=["tech"])]}
        assert web.post("/v1/articles", json=more, headers=admin).status_code == 200
        eventually(lambda: versions.read(redis_client).model == 2, "the second fit", log)
        depths: dict[str, int] = {}

        def precomputed() -> bool:
            depths.update(status.queue_depths(redis_client))
            return depths["finished"] == 3 and depths["queued"] + depths["started"] == 0

        eventually(precomputed, "the precompute", log)
        wait_for_model(web)
        response = web.get("/v1/users/alice/feed", headers=alice)
        assert response.headers["X-Feed-Cache"] == "hit"
        assert depths["failed"] == 0 and depths["workers"] == 1
        assert process.poll() is None
    assert process.returncode == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "feed.jobs.reindex_job" in text or "reindex" in text
    assert workers_alive(redis_client) == 0  # it deregistered on the way out


def test_two_workers_run_a_periodic_task_once(redis_server, redis_client, tmp_path):
    articles.upsert(redis_client, [(0, Article.from_card(article(), ""))])
    with ExitStack() as stack:
        for n in range(2):
            stack.enter_context(
                worker_process(
                    redis_server.url,
                    tmp_path / f"worker-{n}.log",
                    NEWSFEED_REINDEX_INTERVAL_SECONDS="3600",
                    NEWSFEED_SOURCE_POLL_SECONDS="3600",
                )
            )
        log = tmp_path / "worker-0.log"
        eventually(lambda: workers_alive(redis_client) == 2, "both workers", log)
        eventually(lambda: versions.read(redis_client).model == 1, "the periodic fit", log)
        time.sleep(3)  # both ticked about three times more since
        depths = status.queue_depths(redis_client)
        assert versions.read(redis_client).model == 1
        assert depths["finished"] == 2, depths  # one forced reindex, one poll, whichever ran them


def test_jobs_prints_the_queue_depths_and_failed_jobs(redis_server, redis_client, monkeypatch):
    monkeypatch.setenv("NEWSFEED_REDIS_URL", redis_server.url)
    monkeypatch.setenv("NEWSFEED_JWT_SECRET", TEST_SECRET)
    jobs.enqueue_poll(redis_client)
    result = CliRunner().invoke(cli, ["jobs", "--failed"])
    assert result.exit_code == 0, result.output
    assert "queued 1, started 0, scheduled 0" in result.output
    assert "workers 0" in result.output


def test_serve_on_the_embedded_redis_runs_a_worker_and_stops_it(tmp_path):
    with serve(tmp_path, None, args=["--demo"], workers=1) as service:
        children = psutil.Process(service.master_pid).children()
        [worker] = [c for c in children if "worker" in c.cmdline()]
        base = service.wait_ready()
        secret = (tmp_path / "var" / "jwt-secret").read_text().strip()
        token = jwt.encode({"sub": "editor", "admin": True, "exp": time.time() + 60}, secret)
        admin = {"Authorization": f"Bearer {token}"}
        reply = service.call(
            "POST", "/v1/articles", headers=admin, json_body={"articles": [article()]}
        )
        assert reply.status == 200, reply.body
        ready = service.wait_ready()  # fitted by the worker: the web processes only enqueue
        assert ready["model_version"] > base["model_version"]
    assert service.process.returncode == 0, service.log_tail()
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE


def test_a_worker_takes_jobs_again_after_its_redis_is_killed_and_restarted(tmp_path):
    log = tmp_path / "worker.log"
    # A fixed port, so the restarted server is where the worker looks for it.
    server = RedisServer(
        tmp_path / "redis", port=free_port(), appendonly=True, appendfsync="always"
    ).start()
    try:
        client = open_redis(server.url, socket_timeout=5, connect_timeout=5)
        articles.upsert(client, [(0, Article.from_card(article(), ""))])
        with worker_process(server.url, log, NEWSFEED_REINDEX_INTERVAL_SECONDS="0") as process:
            jobs.enqueue_reindex(client, force=True)
            eventually(lambda: versions.read(client).model == 1, "the first fit", log)
            server.kill()  # a crash: the worker's connections break mid-wait
            time.sleep(1)
            server.start()
            jobs.enqueue_reindex(client, force=True)
            eventually(lambda: versions.read(client).model == 2, "a fit after the restart", log)
            assert process.poll() is None
        client.close()
    finally:
        server.stop()


def clicked_pages(r: redis.Redis, ids: list[str], events: int) -> None:
    """Store served pages of 20 impressions, a few clicked, until the stream holds ``events``
    entries: the learned ranker's training data, as the events API writes it."""
    rng = random.Random(7)
    at = time.time() - 3600
    pipe = r.pipeline(transaction=False)
    written = page = 0
    while written < events:
        user, feed_id = f"reader-{rng.randrange(200)}", f"page-{page}"
        for position, article_id in enumerate(rng.sample(ids, 20)):
            for kind in ("impression", "click") if rng.random() < 0.08 else ("impression",):
                entry = {"type": kind, "user": user, "article": article_id, "ts": f"{at:.3f}"}
                pipe.xadd(STREAM_KEY, {**entry, "feed_id": feed_id, "position": str(position)})
                written += 1
        page, at = page + 1, at + 0.05
        if len(pipe) >= 5000:
            pipe.execute()
    pipe.execute()


def test_a_fit_a_write_asks_for_does_not_wait_for_a_training_of_the_learned_ranker(
    redis_server, redis_client, tmp_path
):
    """The scheduled training reads the whole event stream (seconds to a minute): the worker's
    only job loop must go on fitting what writes ask for meanwhile."""
    cards = [article() for _ in range(200)]
    articles.upsert(redis_client, [(i, Article.from_card(c, "")) for i, c in enumerate(cards)])
    assert fit_under_lock(redis_client, live_window_days=30).result is not None
    clicked_pages(redis_client, [c["id"] for c in cards], jobs.LEARNED_TRAIN_EVENTS)
    log = tmp_path / "worker.log"
    # The worker's first tick finds the training due (enough events, none trained yet).
    with worker_process(redis_server.url, log, NEWSFEED_REINDEX_INTERVAL_SECONDS="0") as process:
        eventually(
            lambda: redis_client.exists(learned_store.LEASE_KEY), "the training started", log
        )
        articles.upsert(redis_client, [(0, Article.from_card(article(), ""))])
        written = versions.read(redis_client).corpus
        assert jobs.request_reindex(redis_client, written) is not None  # as a web process does

        def covered() -> bool:
            meta = model_store.current_meta(redis_client)
            return meta is not None and meta.corpus_version >= written

        eventually(covered, "the fit of the write", log, timeout=STARTUP_SECONDS)
        assert learned_store.last_outcome(redis_client) is None, "fitted after the training"
        eventually(
            lambda: learned_store.last_outcome(redis_client) is not None, "the training", log
        )
        assert process.poll() is None
