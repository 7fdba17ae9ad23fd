"""The JSON the console reads (exposures over time, model, jobs, rankers, reindex now), the
console page itself, and that every console data endpoint is admin-only."""

from __future__ import annotations

import time

import pytest

from feed import experiments
from feed.experiments import Assignment, exposures
from tests.factories import demo_corpus

EXPERIMENT = {
    "name": "fresh-vs-tfidf",
    "variants": [
        {"name": "control", "ranker": "tfidf", "params": {}, "weight": 1},
        {"name": "fresh", "ranker": "latest", "params": {}, "weight": 1},
    ],
    "traffic": 1.0,
}
# Every endpoint the console reads or acts through: a reader's token is refused by each.
CONSOLE_ENDPOINTS = [
    ("GET", "/v1/experiments"),
    ("POST", "/v1/experiments"),
    ("GET", "/v1/experiments/fresh-vs-tfidf"),
    ("POST", "/v1/experiments/fresh-vs-tfidf/start"),
    ("POST", "/v1/experiments/fresh-vs-tfidf/stop"),
    ("GET", "/v1/experiments/fresh-vs-tfidf/results"),
    ("GET", "/v1/experiments/fresh-vs-tfidf/exposures"),
    ("GET", "/v1/rankers"),
    ("GET", "/v1/sources"),
    ("PATCH", "/v1/sources/0123456789ab"),
    ("POST", "/v1/sources/0123456789ab/poll"),
    ("GET", "/v1/model"),
    ("GET", "/v1/jobs"),
    ("POST", "/v1/jobs/reindex"),
    ("GET", "/v1/users/reader/profile"),
    ("GET", "/v1/users/reader/feed?explain=true"),
    ("GET", "/v1/users/reader/feed?explain=true&ranker=latest"),
]


@pytest.fixture
def running(client, tokens):
    admin = tokens.admin()
    demo_corpus(client, admin, 200)
    assert client.post("/v1/experiments", json=EXPERIMENT, headers=admin).status_code == 201
    assert client.post("/v1/experiments/fresh-vs-tfidf/start", headers=admin).status_code == 200
    return admin


def serve_pages(client, tokens, readers: int, pages: int = 1) -> None:
    for n in range(readers):
        user = f"reader-{n}"
        headers = tokens.user(user)
        client.put(f"/v1/users/{user}/categories", json={"categories": ["tech"]}, headers=headers)
        for _ in range(pages):
            assert client.get(f"/v1/users/{user}/feed?limit=5", headers=headers).status_code == 200


@pytest.mark.parametrize(("method", "path"), CONSOLE_ENDPOINTS)
def test_a_reader_token_gets_403_from_every_console_endpoint(client, tokens, method, path):
    response = client.open(path, method=method, headers=tokens.user("reader"), json={})
    assert response.status_code == 403, response.json
    assert response.json["error"]["code"] == "forbidden"


def test_exposures_per_variant_add_up_to_the_results(client, tokens, running):
    serve_pages(client, tokens, readers=30, pages=2)
    series = client.get("/v1/experiments/fresh-vs-tfidf/exposures", headers=running).json
    results = client.get("/v1/experiments/fresh-vs-tfidf/results", headers=running).json
    assert series["experiment"] == "fresh-vs-tfidf" and series["interval"] == "hour"
    assert [v["name"] for v in series["variants"]] == ["control", "fresh"]
    assert len(series["starts"]) >= 1
    assert series["starts"][0].endswith(":00:00Z")
    for variant, outcome in zip(series["variants"], results["variants"], strict=True):
        assert len(variant["users"]) == len(variant["pages"]) == len(series["starts"])
        assert sum(variant["users"]) == outcome["users"]
        assert sum(variant["pages"]) == outcome["pages"]
    assert sum(sum(v["users"]) for v in series["variants"]) == 30
    assert sum(sum(v["pages"]) for v in series["variants"]) == 60

    daily = client.get(
        "/v1/experiments/fresh-vs-tfidf/exposures?interval=day", headers=running
    ).json
    assert daily["interval"] == "day" and daily["starts"][-1].endswith("T00:00:00Z")
    assert sum(sum(v["pages"]) for v in daily["variants"]) == 60


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/experiments/fresh-vs-tfidf/exposures?interval=week", 422),
        ("/v1/experiments/no-such-experiment/exposures", 404),
    ],
)
def test_exposure_queries_are_checked(client, tokens, running, path, status):
    response = client.get(path, headers=running)
    assert response.status_code == status, response.json


def test_exposures_are_bucketed_by_the_hour_they_happened_in(redis_client):
    """Served pages counted in the hour they were served; days sum the hours (UTC)."""
    day = 1_700_006_400.0  # a UTC midnight
    experiment = experiments.create(
        redis_client, experiments.Experiment.from_dict({**EXPERIMENT, "salt": "s"}), now=day
    )
    experiments.start(redis_client, experiment.name, now=day + 60)
    control = Assignment(experiment.name, "control", "tfidf", {}, "fresh-vs-tfidf:control")
    fresh = Assignment(experiment.name, "fresh", "latest", {}, "fresh-vs-tfidf:fresh")
    for user, assignment, at in [
        ("u1", control, day + 100),
        ("u1", control, day + 200),  # the same hour, the same user: a page, no new user
        ("u2", fresh, day + 3 * 3600 + 5),
        ("u1", control, day + 25 * 3600),  # the next day
    ]:
        experiments.record_exposure(redis_client, assignment, user, now=at)
    now = day + 26 * 3600
    hourly = experiments.exposure_series(redis_client, experiment.name, "hour", now=now)
    assert hourly.starts[0] == day and hourly.starts[-1] == day + 26 * 3600
    assert len(hourly.starts) == 27
    by_name = {v.name: v for v in hourly.variants}
    assert by_name["control"].pages[0] == 2 and by_name["control"].users[0] == 1
    assert by_name["fresh"].pages[3] == 1 and by_name["fresh"].users[3] == 1
    assert by_name["control"].pages[25] == 1 and by_name["control"].users[25] == 0
    daily = experiments.exposure_series(redis_client, experiment.name, "day", now=now)
    assert daily.starts == (day, day + 86_400)
    assert {v.name: v.pages for v in daily.variants} == {"control": (2, 1), "fresh": (1, 0)}


def test_a_long_experiment_answers_its_latest_buckets(redis_client):
    start = 1_700_006_400.0
    experiment = experiments.create(
        redis_client, experiments.Experiment.from_dict({**EXPERIMENT, "salt": "s"}), now=start
    )
    experiments.start(redis_client, experiment.name, now=start)
    later = start + 100 * 86_400
    hourly = experiments.exposure_series(redis_client, experiment.name, "hour", now=later)
    assert len(hourly.starts) == exposures.MAX_BUCKETS
    assert hourly.starts[-1] == later - later % 3600
    daily = experiments.exposure_series(redis_client, experiment.name, "day", now=later)
    assert len(daily.starts) == 101


def test_the_model_view_says_version_age_articles_and_lag(client, tokens):
    admin = tokens.admin()
    demo_corpus(client, admin, 50)
    body = client.get("/v1/model", headers=admin).json
    assert body["model_version"] >= 1
    assert body["articles"] == 50 and body["model_articles"] == 50
    assert body["model_corpus_version"] == body["corpus_version"]
    assert body["lag_versions"] == 0 and body["lag_seconds"] == 0
    assert 0 <= body["age_seconds"] < 60 and body["fitted_at"] <= time.time()
    assert body["reindex_mode"] == "thread" and "serving" in body["learned"]


def test_reindex_now_in_thread_mode_publishes_a_newer_model(client, tokens):
    admin = tokens.admin()
    demo_corpus(client, admin, 50)
    before = client.get("/v1/model", headers=admin).json["model_version"]
    response = client.post("/v1/jobs/reindex", headers=admin)
    assert response.status_code == 202
    assert response.json == {"mode": "thread", "job_id": None}
    deadline = time.monotonic() + 30
    while client.get("/v1/model", headers=admin).json["model_version"] == before:
        assert time.monotonic() < deadline, "no new model after reindex now"
        time.sleep(0.05)


def test_reindex_now_in_queue_mode_queues_a_job_the_jobs_view_lists(make_app, tokens):
    app = make_app(reindex_mode="queue", auto_reindex=False)
    client = app.test_client()
    admin = tokens.admin()
    try:
        response = client.post("/v1/jobs/reindex", headers=admin)
        assert response.status_code == 202 and response.json["mode"] == "queue"
        jobs = client.get("/v1/jobs", headers=admin).json
    finally:
        app.extensions.pop("newsfeed.queue").close()
    assert jobs["counts"]["queued"] == 1 and jobs["counts"]["workers"] == 0
    assert [(j["id"], j["state"]) for j in jobs["active"]] == [(response.json["job_id"], "queued")]
    assert jobs["active"][0]["description"] == "reindex (periodic)"
    assert jobs["failed"] == []


def test_rankers_list_each_ranker_with_its_parameters(client, tokens):
    body = client.get("/v1/rankers", headers=tokens.admin()).json
    by_name = {r["name"]: r["params"] for r in body["rankers"]}
    assert {"tfidf", "latest", "popular"} <= set(by_name)
    assert by_name["tfidf"]["half_life_hours"] == 24.0
    assert by_name["latest"]["mmr_lambda"] is None


def test_the_console_page_holds_no_secret_and_loads_nothing_from_elsewhere(client):
    response = client.get("/console")
    html = response.get_data(as_text=True)
    response.close()
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "http://" not in html and "https://" not in html
    assert "eyJ" not in html, "no token in the page"
    for needle in ("/static/console.js", "/static/vendor/chartjs/chart.umd.min.js", "<label"):
        assert needle in html
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy


def test_dev_token_hands_out_an_admin_token_only_in_dev_mode(make_app, client):
    assert client.get("/dev/token?admin=true").status_code == 404
    dev = make_app(dev_mode=True).test_client()
    body = dev.get("/dev/token?admin=true").json
    assert body["user_id"] == "demo-admin"
    headers = {"Authorization": f"Bearer {body['token']}"}
    assert dev.get("/v1/model", headers=headers).status_code == 200
    reader = dev.get("/dev/token").json
    assert (
        dev.get("/v1/model", headers={"Authorization": f"Bearer {reader['token']}"}).status_code
        == 403
    )
