"""The feed inspector's explanations: each ranked item's score as the parts its ranker used."""

from __future__ import annotations

from dataclasses import replace

import pytest

from recommender.diversity import MMRRanker
from recommender.ranker import Ranker, RankRequest
from recommender.registry import make_ranker
from tests.test_learned import HOUR, NOW, corpus, linear

REQUEST = RankRequest(
    ("sport",),
    NOW,
    15,
    history=(("a004", NOW - HOUR), ("a007", NOW - 2 * HOUR)),
    popularity={"a001": (3.0, 20.0), "a003": (1.0, 40.0)},
    learned=linear({"follow_score": 1.5, "history_pull": 0.8, "freshness": 0.6, "ctr": 0.3}),
)
RANKERS: list[Ranker] = [
    make_ranker(name) for name in ("tfidf", "learned", "latest", "popular")
] + [MMRRanker(make_ranker("tfidf"))]


@pytest.mark.parametrize("ranker", RANKERS, ids=lambda r: r.name)
def test_explained_parts_sum_to_the_score_and_change_nothing_else(ranker: Ranker) -> None:
    model = corpus()
    plain = ranker.rank(model, REQUEST)
    explained = ranker.rank(model, replace(REQUEST, explain=True))
    assert [replace(r, parts=(), factors=()) for r in explained] == plain
    assert plain and all(not r.parts for r in plain)
    for item in explained:
        assert item.parts
        assert sum(value for _, value in item.parts) == pytest.approx(item.score, abs=1e-9)


def test_tfidf_parts_are_follows_history_and_freshness() -> None:
    explained = make_ranker("tfidf").rank(corpus(), replace(REQUEST, explain=True))
    assert {name for item in explained for name, _ in item.parts} == {
        "follow_similarity",
        "follow_bonus",
        "history",
    }
    assert all(0 < dict(item.factors)["freshness"] <= 1 for item in explained)
    assert any(dict(item.parts)["history"] > 0 for item in explained)


def test_learned_parts_are_its_features_contributions() -> None:
    explained = make_ranker("learned").rank(corpus(), replace(REQUEST, explain=True))
    names = {name for item in explained for name, _ in item.parts}
    assert {"baseline", "follow_score", "freshness"} <= names
    assert "clicks_log" not in names  # weighed 0 by the model: no part


def test_a_reader_following_nothing_gets_freshness_alone() -> None:
    request = RankRequest((), NOW, 5, explain=True)
    for item in make_ranker("tfidf").rank(corpus(), request):
        assert [name for name, _ in item.parts] == ["freshness"]
