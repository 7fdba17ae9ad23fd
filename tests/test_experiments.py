"""Experiments: the admin API, lifecycle conflicts, counters kept at event time, and results."""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

import numpy as np
import pytest

from feed import experiments
from feed.experiments.assignment import Experiment, Variant, assign
from recommender.stats import RatioSums, ratio_delta_test

CONTROL = {"name": "control", "ranker": "tfidf", "params": {}, "weight": 1}
MMR = {"name": "mmr", "ranker": "tfidf", "params": {"mmr_lambda": 0.7}, "weight": 1}


def definition(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "mmr-test",
        "variants": [copy.deepcopy(CONTROL), copy.deepcopy(MMR)],
        "traffic": 1.0,
    }
    body.update(overrides)
    return body


def create(client, tokens, **overrides):
    return client.post("/v1/experiments", json=definition(**overrides), headers=tokens.admin())


def action(client, tokens, name, verb):
    return client.post(f"/v1/experiments/{name}/{verb}", headers=tokens.admin())


# -- API: lifecycle


def test_create_list_get_start_stop(client, tokens, redis_client):
    created = create(client, tokens, salt="s-1")
    assert created.status_code == 201, created.json
    body = created.json
    assert body["status"] == "draft" and body["control"] == "control"
    assert (body["salt"], body["surface"], body["namespace"]) == ("s-1", "feed", [0.0, 1.0])
    assert body["variants"][1] == {**MMR, "weight": 1.0}
    assert body["created_at"].endswith("Z") and body["started_at"] is None

    listed = client.get("/v1/experiments", headers=tokens.admin()).json["experiments"]
    assert [e["name"] for e in listed] == ["mmr-test"]
    assert client.get("/v1/experiments/mmr-test", headers=tokens.admin()).json == body

    started = action(client, tokens, "mmr-test", "start")
    assert started.status_code == 200 and started.json["status"] == "running"
    assert started.json["started_at"] is not None
    assert [e.name for e in experiments.running(redis_client)] == ["mmr-test"]

    stopped = action(client, tokens, "mmr-test", "stop")
    assert stopped.status_code == 200 and stopped.json["status"] == "stopped"
    assert experiments.running(redis_client) == ()
    assert redis_client.get(experiments.RUNNING_KEY) is None


def test_salt_defaults_to_the_name(client, tokens):
    assert create(client, tokens).json["salt"] == "mmr-test"


ROUTES = [
    ("post", "/v1/experiments"),
    ("get", "/v1/experiments"),
    ("get", "/v1/experiments/x"),
    ("post", "/v1/experiments/x/start"),
    ("post", "/v1/experiments/x/stop"),
    ("get", "/v1/experiments/x/results"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_is_admin_only(client, tokens, method, path):
    send = getattr(client, method)
    kwargs = {"json": definition()} if method == "post" else {}
    assert send(path, **kwargs).status_code == 401
    refused = send(path, headers=tokens.user("alice"), **kwargs)
    assert refused.status_code == 403 and refused.json["error"]["code"] == "forbidden"


@pytest.mark.parametrize(("method", "path"), ROUTES[2:])
def test_unknown_experiment_is_404(client, tokens, method, path):
    response = getattr(client, method)(path, headers=tokens.admin())
    assert response.status_code == 404
    assert response.json["error"]["code"] == "experiment_not_found"
    assert response.json["error"]["message"] == "unknown experiment: 'x'"


def _variant(index: int, **changes: Any):
    def mutate(body: dict[str, Any]) -> None:
        body["variants"][index].update(changes)

    return mutate


@pytest.mark.parametrize(
    ("mutate", "code", "message"),
    [
        (
            _variant(1, ranker="magic"),
            "invalid_experiment",
            "variant 'mmr': unknown ranker 'magic'; choose from latest, learned, popular, tfidf",
        ),
        (
            _variant(1, params={"nope": 1}),
            "invalid_experiment",
            "variant 'mmr': unknown parameter(s) nope for ranker 'tfidf'",
        ),
        (
            _variant(1, params={"mmr_lambda": 2}),
            "invalid_experiment",
            "variant 'mmr': mmr_lambda must be a number between 0 and 1",
        ),
        (_variant(1, params={"mmr_lambda": "0.5"}), "validation_error", "params"),
        (_variant(1, name="control"), "invalid_experiment", "'control' repeats"),
        (_variant(0, weight=0), "validation_error", "weight"),
        (_variant(0, weight=-1), "validation_error", "weight"),
        (_variant(0, colour="red"), "validation_error", "colour: Unknown field."),
        (lambda b: b["variants"].pop(), "validation_error", "variants"),
        (lambda b: b.update(variants=[CONTROL] * 11), "validation_error", "variants"),
        (lambda b: b.update(traffic=0), "validation_error", "traffic"),
        (lambda b: b.update(traffic=1.5), "validation_error", "traffic"),
        (lambda b: b.update(traffic=0.0001), "invalid_experiment", "gets no buckets"),
        (lambda b: b.update(name="Bad Name"), "validation_error", "name"),
        (lambda b: b.update(namespace=[0.5, 0.5]), "validation_error", "namespace"),
        (lambda b: b.update(namespace=[0, 2]), "validation_error", "namespace"),
        (lambda b: b.update(owner="me"), "validation_error", "owner: Unknown field."),
        (lambda b: b.pop("traffic"), "validation_error", "traffic"),
    ],
)
def test_invalid_definitions_are_422(client, tokens, mutate, code, message):
    body = definition()
    mutate(body)
    response = client.post("/v1/experiments", json=body, headers=tokens.admin())
    assert response.status_code == 422, response.json
    error = response.json["error"]
    assert error["code"] == code
    assert message in error["message"]


# -- API: conflicts


def test_a_name_is_never_reused(client, tokens):
    assert create(client, tokens).status_code == 201
    again = create(client, tokens, traffic=0.5)
    assert again.status_code == 409
    assert again.json["error"]["code"] == "experiment_conflict"
    assert "already exists (draft)" in again.json["error"]["message"]
    action(client, tokens, "mmr-test", "start")
    refused = create(client, tokens, variants=[CONTROL, {**MMR, "weight": 3}])
    assert refused.status_code == 409
    assert "stop it and create a new experiment" in refused.json["error"]["message"]
    assert client.get("/v1/experiments/mmr-test", headers=tokens.admin()).json["traffic"] == 1.0


def test_overlapping_experiment_cannot_start_while_another_runs(client, tokens):
    create(client, tokens, name="first", namespace=[0, 0.6])
    create(client, tokens, name="second", namespace=[0.5, 1])
    assert action(client, tokens, "first", "start").status_code == 200
    refused = action(client, tokens, "second", "start")
    assert refused.status_code == 409
    error = refused.json["error"]
    assert error["code"] == "experiment_conflict"
    assert error["message"].startswith("experiment 'first' is running on surface 'feed'")
    assert error["details"] == {"experiment": "second", "running": "first"}
    action(client, tokens, "first", "stop")
    assert action(client, tokens, "second", "start").status_code == 200


def test_disjoint_namespaces_and_other_surfaces_run_together(client, tokens, redis_client):
    create(client, tokens, name="left", namespace=[0, 0.5])
    create(client, tokens, name="right", namespace=[0.5, 1])
    create(client, tokens, name="elsewhere", surface="digest")
    for name in ("left", "right", "elsewhere"):
        assert action(client, tokens, name, "start").status_code == 200, name
    running = experiments.running(redis_client)
    assert sorted(e.name for e in running) == ["elsewhere", "left", "right"]
    assert {assign(running, f"u{i}").experiment for i in range(200)} == {"left", "right"}


def test_status_changes_only_go_forward(client, tokens):
    create(client, tokens)
    stop_draft = action(client, tokens, "mmr-test", "stop")
    assert stop_draft.status_code == 409 and "is draft" in stop_draft.json["error"]["message"]
    action(client, tokens, "mmr-test", "start")
    assert action(client, tokens, "mmr-test", "start").status_code == 409
    action(client, tokens, "mmr-test", "stop")
    restart = action(client, tokens, "mmr-test", "start")
    assert restart.status_code == 409
    assert "stopped is final" in restart.json["error"]["message"]
    assert action(client, tokens, "mmr-test", "stop").status_code == 409


# -- counters


def stored(redis_client, name: str = "ab", weights=(1.0, 1.0), traffic=1.0) -> Experiment:
    variants = tuple(
        Variant(n, "tfidf", {}, w) for n, w in zip(("control", "treatment"), weights, strict=False)
    )
    experiments.create(redis_client, Experiment(name, variants, traffic, name))
    return experiments.start(redis_client, name)


def test_exposure_counts_users_once_and_pages_each_time(redis_client):
    exp = stored(redis_client)
    placed = assign([exp], "alice")
    assert placed is not None
    experiments.record_exposure(redis_client, placed, "alice")
    experiments.record_exposure(redis_client, placed, "alice")
    counts = experiments.counts(redis_client, "ab")[placed.variant]
    assert (counts["users"], counts["pages"]) == (1, 2)
    assert redis_client.ttl(experiments.USER_KEY % ("alice", "ab")) > 80 * 86_400


def test_events_count_only_exposed_users_of_running_experiments(redis_client):
    exp = stored(redis_client, traffic=0.5)
    users = [f"u{i}" for i in range(40)]
    inside = [u for u in users if assign([exp], u)]
    outside = [u for u in users if not assign([exp], u)]
    exposed, unexposed = inside[0], inside[1]
    placed = assign([exp], exposed)
    assert placed is not None and outside
    experiments.record_exposure(redis_client, placed, exposed)
    batch = [(exposed, "impression")] * 3 + [(exposed, "click"), (exposed, "read")]
    batch += [(unexposed, "impression"), (unexposed, "click"), (outside[0], "impression")]
    experiments.record_events(redis_client, [exp], batch)
    experiments.record_events(
        redis_client, [exp], [(exposed, "impression")] * 2 + [(exposed, "click")]
    )
    experiments.record_events(redis_client, [], [(exposed, "click")])  # stopped since: ignored
    # x = 2 clicks, y = 5 impressions for the one exposed user.
    assert experiments.counts(redis_client, "ab") == {
        placed.variant: {
            "users": 1,
            "pages": 1,
            "impressions": 5,
            "clicks": 2,
            "sx2": 4,
            "sy2": 25,
            "sxy": 10,
        }
    }


# -- results


def simulate(redis_client, exp, users, ctr, rng, lose=0.0):
    """Serve a page to each user and send their impressions and clicks in API-sized batches.

    Users' click propensities vary (beta-distributed around the arm's CTR), so impressions
    of one user are correlated, as they are in real feeds. ``lose`` drops that share of the
    treatment's exposures, like a variant that fails to log them.
    """
    per_arm: dict[str, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    events: list[tuple[str, str]] = []
    for n in range(users):
        user = f"sim-{n}"
        placed = assign([exp], user)
        assert placed is not None
        if placed.variant != "control" and rng.random() < lose:
            continue
        experiments.record_exposure(redis_client, placed, user)
        shown = 1 + int(rng.poisson(15))
        rate = ctr[placed.variant]
        clicks = int(rng.binomial(shown, rng.beta(200 * rate, 200 * (1 - rate))))
        events += [(user, "impression")] * shown + [(user, "click")] * clicks
        per_arm[placed.variant][0].append(clicks)
        per_arm[placed.variant][1].append(shown)
    for start in range(0, len(events), 500):
        experiments.record_events(redis_client, [exp], events[start : start + 500])
    return per_arm


def test_results_find_a_40_percent_lift_by_the_delta_method(redis_client):
    exp = stored(redis_client)
    rng = np.random.default_rng(7)
    per_arm = simulate(redis_client, exp, 4000, {"control": 0.05, "treatment": 0.07}, rng)
    result = experiments.results(redis_client, "ab")
    control, treatment = result.variants
    assert control.is_control and control.relative_lift is None and control.p_value is None
    assert treatment.relative_lift == pytest.approx(0.40, abs=0.1)
    assert treatment.relative_lift_ci is not None and treatment.relative_lift_ci.contains(0.40)
    assert treatment.relative_lift_ci.low > 0.2
    assert treatment.p_value is not None and treatment.p_value < 1e-6 and treatment.significant
    assert treatment.naive_p_value is not None and treatment.naive_p_value < 1e-6
    # The counters kept at event time are exactly the per-user sums of the simulated data.
    truth = {v: RatioSums.from_arrays(*per_arm[v]) for v in ("control", "treatment")}
    expected = ratio_delta_test(truth["control"], truth["treatment"])
    assert treatment.p_value == pytest.approx(expected.p_value, rel=1e-9)
    assert treatment.relative_lift == pytest.approx(expected.relative_lift, rel=1e-12)
    for row in result.variants:
        assert (row.users, row.clicks, row.impressions) == (
            truth[row.name].users,
            truth[row.name].sum_x,
            truth[row.name].sum_y,
        )
        assert row.pages == row.users
        assert row.ctr_ci is not None and row.ctr is not None and row.ctr_ci.contains(row.ctr)
    assert control.ctr == pytest.approx(0.05, abs=0.005)
    assert not result.srm.mismatch


def test_srm_fires_when_a_variant_loses_exposures(redis_client):
    exp = stored(redis_client)
    rng = np.random.default_rng(11)
    simulate(redis_client, exp, 3000, {"control": 0.05, "treatment": 0.05}, rng, lose=0.2)
    srm = experiments.results(redis_client, "ab").srm
    assert srm.mismatch and srm.p_value < 0.001


@pytest.mark.parametrize(
    ("users", "chi2", "mismatch"),
    [
        # Expected 5,300 each: chi² = 2 × 300² / 5,300 = 33.962, p = 5.6e-9.
        ((5000, 5600), 33.9623, True),
        # Expected 5,025 each: chi² = 2 × 25² / 5,025 = 0.2488, p = 0.618.
        ((5000, 5050), 0.2488, False),
    ],
)
def test_srm_against_known_values(redis_client, users, chi2, mismatch):
    stored(redis_client)
    for variant, count in zip(("control", "treatment"), users, strict=True):
        redis_client.hset(experiments.counts_key("ab", variant), f"{variant}:users", count)
    srm = experiments.results(redis_client, "ab").srm
    assert srm.chi2 == pytest.approx(chi2, abs=1e-4)
    assert srm.mismatch is mismatch
    assert srm.expected == pytest.approx((sum(users) / 2,) * 2)


def test_results_endpoint_returns_the_documented_fields(client, tokens, redis_client):
    exp = stored(redis_client, weights=(1.0, 3.0))
    simulate(redis_client, exp, 400, {"control": 0.05, "treatment": 0.05}, np.random.default_rng(3))
    response = client.get("/v1/experiments/ab/results", headers=tokens.admin())
    assert response.status_code == 200, response.json
    body = response.json
    assert body["experiment"] == "ab" and body["status"] == "running"
    assert body["method"] == "delta method on per-user CTR (Deng et al. 2018)"
    assert body["naive_method"].startswith("two-proportion z-test")
    assert body["ctr_ci_method"] == "Wilson score interval on impressions"
    assert body["confidence"] == 0.95
    assert set(body["srm"]) == {"chi2", "dof", "p_value", "mismatch", "expected", "alpha", "method"}
    assert body["srm"]["alpha"] == 0.001 and body["srm"]["dof"] == 1
    control, treatment = body["variants"]
    assert set(control) == {
        "name",
        "ranker",
        "params",
        "weight",
        "is_control",
        "users",
        "pages",
        "impressions",
        "clicks",
        "ctr",
        "ctr_ci",
        "relative_lift",
        "relative_lift_ci",
        "p_value",
        "significant",
        "naive_p_value",
    }
    assert (control["weight"], treatment["weight"]) == (0.25, 0.75)
    assert control["relative_lift"] is None and control["p_value"] is None
    assert set(treatment["ctr_ci"]) == {"low", "high"}
    assert 0 <= treatment["p_value"] <= 1 and isinstance(treatment["significant"], bool)
    assert control["users"] + treatment["users"] == 400


def test_results_of_an_experiment_without_data(client, tokens):
    create(client, tokens)
    body = client.get("/v1/experiments/mmr-test/results", headers=tokens.admin()).json
    assert [v["users"] for v in body["variants"]] == [0, 0]
    assert body["variants"][1]["ctr"] is None and body["variants"][1]["p_value"] is None
    assert body["srm"]["mismatch"] is False
