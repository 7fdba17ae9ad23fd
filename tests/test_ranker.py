"""The TF-IDF ranker: follows first, related articles capped, freshness, and the fallback."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import sparse

from recommender.model import CorpusModel
from recommender.ranker import RankRequest, TfidfRanker

NOW = 1_800_000_000.0
HOUR = 3600.0


def model_of(rows: list[tuple[str, str, float, float]], slugs=("a", "b")) -> CorpusModel:
    """rows: (id, category, similarity to that category's centroid, age in hours)."""
    k = len(slugs)
    members = np.zeros((len(rows), k), dtype=bool)
    sims = np.zeros((len(rows), k), dtype=np.float32)
    for i, (_, slug, sim, _) in enumerate(rows):
        members[i, slugs.index(slug)] = True
        sims[i, slugs.index(slug)] = sim
    return CorpusModel(
        ids=np.array([r[0] for r in rows]),
        published=np.array([NOW - r[3] * HOUR for r in rows]),
        slugs=list(slugs),
        members=members,
        sims=sims,
        gram=np.eye(k),
        vectors=sparse.csr_matrix((len(rows), 0), dtype=np.float32),
    )


def related_model(n_inside: int, n_outside: int) -> CorpusModel:
    """Outside articles are very similar to the followed category 'a' and very fresh."""
    rows = [(f"in{i}", "a", 0.2, 10.0 + i) for i in range(n_inside)]
    model = model_of(rows + [(f"out{i}", "b", 0.0, 0.0) for i in range(n_outside)])
    model.sims[n_inside:, 0] = 0.95  # out* look like 'a' articles
    return model


@pytest.mark.parametrize("size", [5, 10, 20, 37, 100])
def test_related_articles_never_exceed_their_share_of_any_prefix(size):
    ranked = TfidfRanker().rank(related_model(200, 50), RankRequest(("a",), NOW, size))
    assert len(ranked) == size
    for prefix in range(1, size + 1):
        outside = sum(r.reason == "related" for r in ranked[:prefix])
        assert outside <= math.floor(0.1 * prefix)
    assert sum(r.reason == "related" for r in ranked) == math.floor(0.1 * size)


def test_related_articles_fill_in_when_followed_ones_run_out():
    ranked = TfidfRanker().rank(related_model(3, 5), RankRequest(("a",), NOW, 20))
    assert [r.reason for r in ranked].count("follow") == 3
    assert [r.reason for r in ranked].count("related") == 5


def test_unrelated_articles_are_left_out():
    model = model_of([("in", "a", 0.5, 1.0), ("far", "b", 0.9, 0.0)])
    ranked = TfidfRanker().rank(model, RankRequest(("a",), NOW, 10))
    assert [r.id for r in ranked] == ["in"]


def test_fresher_wins_between_equally_similar_articles():
    model = model_of([("old", "a", 0.5, 48.0), ("new", "a", 0.5, 1.0)])
    ranked = TfidfRanker(half_life_hours=24).rank(model, RankRequest(("a",), NOW, 10))
    assert [r.id for r in ranked] == ["new", "old"]
    assert ranked[1].score == pytest.approx(ranked[0].score * 0.5 ** (47 / 24), rel=1e-6)


def test_more_similar_wins_at_equal_age():
    model = model_of([("weak", "a", 0.1, 2.0), ("strong", "a", 0.9, 2.0)])
    ranked = TfidfRanker().rank(model, RankRequest(("a",), NOW, 10))
    assert [r.id for r in ranked] == ["strong", "weak"]
    assert ranked[0].reason == "follow" and ranked[0].category == "a"


def test_excluded_articles_never_appear():
    model = model_of([("x", "a", 0.9, 1.0), ("y", "a", 0.5, 1.0)])
    ranked = TfidfRanker().rank(model, RankRequest(("a",), NOW, 10, frozenset({"x"})))
    assert [r.id for r in ranked] == ["y"]


def test_following_nothing_gives_the_latest():
    model = model_of([("old", "a", 0.9, 30.0), ("new", "b", 0.1, 1.0), ("mid", "a", 0.2, 5.0)])
    ranked = TfidfRanker().rank(model, RankRequest((), NOW, 10))
    assert [r.id for r in ranked] == ["new", "mid", "old"]
    assert {r.reason for r in ranked} == {"latest"}


def test_following_only_unknown_categories_gives_the_latest():
    model = model_of([("a1", "a", 0.9, 3.0)])
    assert TfidfRanker().rank(model, RankRequest(("zzz",), NOW, 10))[0].reason == "latest"


def test_an_empty_model_ranks_nothing():
    model = model_of([])
    assert TfidfRanker().rank(model, RankRequest(("a",), NOW, 10)) == []
