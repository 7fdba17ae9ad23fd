"""The comparison rankers (latest, popular), the MMR re-rank, and rankers by name."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from recommender.baselines import LatestRanker, PopularRanker
from recommender.diversity import MMRRanker
from recommender.model import CorpusModel
from recommender.ranker import RankRequest
from recommender.registry import make_ranker
from recommender.tfidf import TfidfRanker

NOW = 1_800_000_000.0
HOUR = 3600.0


def model_of(rows, slugs=("a", "b"), vectors=None):
    """rows: (id, category, age in hours)."""
    members = np.zeros((len(rows), len(slugs)), dtype=bool)
    for i, (_, slug, _) in enumerate(rows):
        members[i, slugs.index(slug)] = True
    return CorpusModel(
        ids=np.array([r[0] for r in rows]),
        published=np.array([NOW - r[2] * HOUR for r in rows]),
        slugs=list(slugs),
        members=members,
        sims=members.astype(np.float32) * 0.5,
        gram=np.eye(len(slugs)),
        vectors=vectors if vectors is not None else sparse.csr_matrix((len(rows), 0)),
    )


def test_latest_is_newest_first_within_follows():
    model = model_of([("a-old", "a", 30), ("b-new", "b", 1), ("a-new", "a", 2)])
    ranked = LatestRanker().rank(model, RankRequest(("a",), NOW, 10))
    assert [r.id for r in ranked] == ["a-new", "a-old"]
    assert all(r.reason == "follow" and r.category == "a" for r in ranked)


def test_latest_without_follows_is_newest_overall():
    model = model_of([("a-old", "a", 30), ("b-new", "b", 1)])
    assert [r.id for r in LatestRanker().rank(model, RankRequest((), NOW, 10))] == [
        "b-new",
        "a-old",
    ]


def test_popular_prefers_a_high_smoothed_ctr_over_one_lucky_click():
    model = model_of([("steady", "a", 5), ("lucky", "a", 5), ("unseen", "a", 5)])
    popularity = {"steady": (30.0, 200.0), "lucky": (1.0, 1.0)}
    ranked = PopularRanker().rank(model, RankRequest(("a",), NOW, 10, popularity=popularity))
    # steady: (30 + 1) / 220 = 0.141; lucky: (1 + 1) / 21 = 0.095; unseen: the prior 0.05.
    assert [r.id for r in ranked] == ["steady", "lucky", "unseen"]
    assert ranked[0].score == pytest.approx(31 / 220, rel=1e-4)


def test_popular_respects_follows_and_exclusions():
    model = model_of([("a1", "a", 1), ("b1", "b", 1), ("a2", "a", 1)])
    popularity = {"b1": (50.0, 60.0), "a1": (5.0, 10.0)}
    request = RankRequest(("a",), NOW, 10, frozenset({"a2"}), popularity=popularity)
    assert [r.id for r in PopularRanker().rank(model, request)] == ["a1"]


def test_mmr_spreads_near_duplicates_apart():
    # x1 and x2 are the same story; y is different and slightly less relevant.
    vectors = sparse.csr_matrix(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32))
    model = model_of([("x1", "a", 1.0), ("x2", "a", 1.1), ("y", "a", 1.2)], vectors=vectors)
    plain = LatestRanker().rank(model, RankRequest(("a",), NOW, 3))
    assert [r.id for r in plain] == ["x1", "x2", "y"]
    diverse = MMRRanker(LatestRanker(), lambda_=0.5).rank(model, RankRequest(("a",), NOW, 3))
    assert [r.id for r in diverse] == ["x1", "y", "x2"]


def test_mmr_with_lambda_one_keeps_the_order():
    vectors = sparse.csr_matrix(np.eye(3, dtype=np.float32))
    model = model_of([("p", "a", 1), ("q", "a", 2), ("r", "a", 3)], vectors=vectors)
    ranked = MMRRanker(LatestRanker(), lambda_=1.0).rank(model, RankRequest(("a",), NOW, 3))
    assert [r.id for r in ranked] == ["p", "q", "r"]


def test_rankers_by_name_with_parameters():
    ranker = make_ranker("tfidf", {"half_life_hours": 6, "follow_weight": 1})
    assert isinstance(ranker, TfidfRanker) and ranker.half_life_hours == 6.0
    wrapped = make_ranker("popular", {"prior_ctr": 0.1, "mmr_lambda": 0.6})
    assert isinstance(wrapped, MMRRanker) and wrapped.name == "popular+mmr"


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("magic", {}, "unknown ranker 'magic'"),
        ("tfidf", {"speed": 1}, "unknown parameter(s) speed"),
        ("tfidf", {"half_life_hours": 0}, "must be > 0"),
        ("latest", {"half_life_hours": "x"}, "must be a number"),
        ("popular", {"prior_ctr": -1}, "must be a number >= 0"),
        ("tfidf", {"mmr_lambda": 2}, "between 0 and 1"),
        ("tfidf", {"follow_weight": True}, "must be a number"),
    ],
)
def test_bad_ranker_definitions_say_what_is_wrong(name, params, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_ranker(name, params)
