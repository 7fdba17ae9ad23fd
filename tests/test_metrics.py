"""GET /metrics: request, cache, build and event metrics counted as the service serves, state
read from Redis at scrape time, and the workers' counts added up under gunicorn."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from api.extensions import EXTENSION
from devtools.redis_server import RedisServer
from feed import experiments, jobs
from tests.conftest import Tokens
from tests.factories import article, demo_corpus, ingest
from tests.live import free_port, serve

EXPERIMENT = {
    "name": "latest-vs-tfidf",
    "variants": [
        {"name": "control", "ranker": "tfidf", "params": {}, "weight": 1},
        {"name": "fresh", "ranker": "latest", "params": {}, "weight": 1},
    ],
    "traffic": 1.0,
}


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, keyed by its name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(client: FlaskClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return parse(response.get_data(as_text=True))


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def requests_count(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], route: str, status: str
) -> float | None:
    return value(
        samples,
        "newsfeed_http_request_duration_seconds_count",
        route=route,
        method="GET",
        status=status,
    )


def test_requests_are_timed_by_route_template_method_and_status(
    client: FlaskClient, tokens: Tokens
) -> None:
    client.get("/v1/categories")
    client.get("/v1/categories")
    client.get("/v1/users/alice/categories", headers=tokens.user("alice"))
    client.get("/v1/users/bob/categories")  # no token: 401
    client.get("/no/such/page")
    client.open("/v1/categories", method="BREW")
    samples = scrape(client)
    assert requests_count(samples, "/v1/categories", "200") == 2
    # The route template, not the path: one series however many users there are.
    assert requests_count(samples, "/v1/users/<user_id>/categories", "200") == 1
    assert requests_count(samples, "/v1/users/<user_id>/categories", "401") == 1
    assert requests_count(samples, "<unmatched>", "404") == 1
    # Any method name a client makes up is one series.
    other = {"route": "<unmatched>", "method": "other", "status": "405"}
    assert value(samples, "newsfeed_http_request_duration_seconds_count", **other) == 1
    assert not any("alice" in str(labels) for _, labels in samples)


def test_a_miss_then_a_hit_counts_one_of_each_and_times_one_build(
    client: FlaskClient, tokens: Tokens
) -> None:
    ingest(client, tokens.admin(), [article() for _ in range(20)])
    alice = tokens.user("alice")
    client.put("/v1/users/alice/categories", json={"categories": ["business"]}, headers=alice)
    before = scrape(client)
    assert value(before, "newsfeed_feed_pages_total", cache="hit") == 0
    assert value(before, "newsfeed_feed_pages_total", cache="miss") == 0
    assert value(before, "newsfeed_feed_build_duration_seconds_count") == 0

    first = client.get("/v1/users/alice/feed?limit=5", headers=alice)
    second = client.get("/v1/users/alice/feed?limit=5", headers=alice)
    assert (first.headers["X-Feed-Cache"], second.headers["X-Feed-Cache"]) == ("miss", "hit")

    after = scrape(client)
    assert value(after, "newsfeed_feed_pages_total", cache="miss") == 1
    assert value(after, "newsfeed_feed_pages_total", cache="hit") == 1
    assert value(after, "newsfeed_feed_build_duration_seconds_count") == 1
    build_seconds = value(after, "newsfeed_feed_build_duration_seconds_sum")
    assert build_seconds is not None and 0 < build_seconds < 5


def test_a_304_and_a_next_page_count_as_hits_and_an_explanation_counts_no_page(
    client: FlaskClient, tokens: Tokens
) -> None:
    ingest(client, tokens.admin(), [article() for _ in range(20)])
    alice = tokens.user("alice")
    client.put("/v1/users/alice/categories", json={"categories": ["business"]}, headers=alice)
    first = client.get("/v1/users/alice/feed?limit=5", headers=alice)
    etag, cursor = first.headers["ETag"], first.json["next_cursor"]
    unchanged = client.get("/v1/users/alice/feed?limit=5", headers={**alice, "If-None-Match": etag})
    following = client.get(f"/v1/users/alice/feed?limit=5&cursor={cursor}", headers=alice)
    explained = client.get("/v1/users/alice/feed?explain=true", headers=tokens.admin())
    statuses = (unchanged.status_code, following.status_code, explained.status_code)
    assert statuses == (304, 200, 200)

    samples = scrape(client)
    assert value(samples, "newsfeed_feed_pages_total", cache="miss") == 1
    assert value(samples, "newsfeed_feed_pages_total", cache="hit") == 2
    assert value(samples, "newsfeed_feed_build_duration_seconds_count") == 1


def test_events_are_counted_accepted_and_rejected_by_reason(
    client: FlaskClient, tokens: Tokens
) -> None:
    stored = article()
    ingest(client, tokens.admin(), [stored])
    events = [
        {"type": "click", "user_id": "alice", "article_id": stored["id"]},
        {"type": "impression", "user_id": "alice", "article_id": stored["id"]},
        {"type": "click", "user_id": "alice", "article_id": "never-stored"},
        {"type": "stare", "user_id": "alice", "article_id": stored["id"]},
    ]
    response = client.post("/v1/events", json={"events": events}, headers=tokens.user("alice"))
    assert response.status_code == 202
    assert response.json["accepted"] == 2
    samples = scrape(client)
    assert value(samples, "newsfeed_events_accepted_total") == 2
    assert value(samples, "newsfeed_events_rejected_total", reason="unknown_article") == 1
    assert value(samples, "newsfeed_events_rejected_total", reason="invalid") == 1


def test_model_and_corpus_gauges_are_read_from_redis(client: FlaskClient, tokens: Tokens) -> None:
    samples = scrape(client)
    assert value(samples, "newsfeed_model_version") == 0
    assert value(samples, "newsfeed_corpus_articles") == 0
    assert value(samples, "newsfeed_model_age_seconds") is None  # no model yet

    ingest(client, tokens.admin(), [article() for _ in range(12)])
    ready = client.get("/readyz").json
    samples = scrape(client)
    assert value(samples, "newsfeed_model_version") == ready["model_version"] > 0
    assert value(samples, "newsfeed_corpus_version") == ready["corpus_version"]
    assert value(samples, "newsfeed_model_articles") == ready["model_articles"] == 12
    assert value(samples, "newsfeed_corpus_articles") == ready["articles"] == 12
    age = value(samples, "newsfeed_model_age_seconds")
    assert age is not None and 0 <= age < 60


def test_job_queue_depth_is_read_from_the_queue(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    assert value(scrape(client), "newsfeed_jobs", state="queued") == 0
    jobs.enqueue_reindex(redis_client, force=True)
    samples = scrape(client)
    assert value(samples, "newsfeed_jobs", state="queued") == 1
    assert value(samples, "newsfeed_jobs", state="failed") == 0
    assert value(samples, "newsfeed_workers") == 0  # none started in this test


def test_experiment_exposures_per_variant_are_the_stored_counters(
    client: FlaskClient, tokens: Tokens, redis_client: redis.Redis
) -> None:
    admin = tokens.admin()
    demo_corpus(client, admin, 200)
    assert client.post("/v1/experiments", json=EXPERIMENT, headers=admin).status_code == 201
    assert client.post("/v1/experiments/latest-vs-tfidf/start", headers=admin).status_code == 200
    for n in range(12):
        headers = tokens.user(f"reader-{n}")
        for _ in range(2):
            assert client.get(f"/v1/users/reader-{n}/feed", headers=headers).status_code == 200

    samples = scrape(client)
    stored = experiments.counts(redis_client, "latest-vs-tfidf")
    exposed = 0.0
    for variant in ("control", "fresh"):
        labels = {"experiment": "latest-vs-tfidf", "variant": variant}
        users = value(samples, "newsfeed_experiment_users_total", **labels)
        pages = value(samples, "newsfeed_experiment_pages_total", **labels)
        assert users == stored.get(variant, {}).get("users", 0)
        assert pages == 2 * (users or 0)
        exposed += users or 0
    assert exposed == 12


def test_metrics_is_public_unlimited_and_not_an_api_operation(make_app: Any) -> None:
    client = make_app(rate_limit_per_ip="2/minute").test_client()
    assert [client.get("/metrics").status_code for _ in range(5)] == [200] * 5
    assert client.get("/v1/categories").status_code == 200
    assert client.get("/v1/categories").status_code == 200
    assert client.get("/v1/categories").status_code == 429
    assert "/metrics" not in client.get("/openapi.json").json["paths"]


def test_openmetrics_is_served_to_a_scraper_that_asks_for_it(client: FlaskClient) -> None:
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.status_code == 200
    assert response.mimetype == "application/openmetrics-text"
    assert response.get_data(as_text=True).rstrip().endswith("# EOF")


def test_redis_down_at_scrape_time_leaves_out_the_state_gauges(
    make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = make_app(redis_url=dead, redis_connect_timeout=0.5, redis_socket_timeout=0.5)
    app.extensions[EXTENSION].keeper.stop()  # its retries would only add noise to the log
    client = app.test_client()
    client.get("/healthz")
    with caplog.at_level("WARNING", logger="api.metrics"):
        samples = scrape(client)
    assert requests_count(samples, "/healthz", "200") == 1
    assert not any(name.startswith(("newsfeed_model_", "newsfeed_corpus_")) for name, _ in samples)
    assert "redis unreachable" in caplog.text


# -- under gunicorn: two workers, one answer


def test_the_gunicorn_master_leaves_prometheus_client_to_the_workers() -> None:
    # Imported before on_starting sets PROMETHEUS_MULTIPROC_DIR, it would count per process.
    check = "import sys, cli, config.gunicorn; sys.exit('prometheus_client' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", check], check=False).returncode == 0


def _healthz_count_per_worker(metrics_dir: str) -> dict[int, float]:
    counts: dict[int, float] = {}
    for path in glob.glob(os.path.join(metrics_dir, "histogram_*.db")):
        pid = int(Path(path).stem.rpartition("_")[2])
        for family in MultiProcessCollector.merge([path]):
            for s in family.samples:
                if (
                    s.name == "newsfeed_http_request_duration_seconds_count"
                    and s.labels.get("route") == "/healthz"
                ):
                    counts[pid] = counts.get(pid, 0) + s.value
    return counts


@pytest.mark.slow
def test_gunicorn_workers_counts_add_up_in_one_scrape(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with serve(tmp_path, redis_server.url, workers=2, TMPDIR=str(tmp)) as service:
        service.ingest([article() for _ in range(10)])
        [metrics_dir] = glob.glob(str(tmp / "newsfeed-metrics-*"))
        before = parse(service.call("GET", "/metrics").body)
        start = requests_count(before, "/healthz", "200") or 0
        sent = 0
        deadline = time.monotonic() + 30
        # New connections land on whichever worker accepts first: go on until both have.
        while len([n for n in _healthz_count_per_worker(metrics_dir).values() if n]) < 2:
            assert time.monotonic() < deadline, "one worker took every connection"
            for _ in range(10):
                assert service.call("GET", "/healthz").status == 200
                sent += 1

        per_worker = _healthz_count_per_worker(metrics_dir)
        assert set(per_worker) <= service.worker_pids()
        for _ in range(3):  # whichever worker answers the scrape adds up both
            samples = parse(service.call("GET", "/metrics").body)
            assert requests_count(samples, "/healthz", "200") == start + sent
            assert requests_count(samples, "/healthz", "200") == sum(per_worker.values())
        ready = service.call("GET", "/readyz").body
        assert value(samples, "newsfeed_model_version") == ready["model_version"] > 0
        assert value(samples, "newsfeed_corpus_articles") == 10
    assert not os.path.exists(metrics_dir)  # removed with the server that made it
