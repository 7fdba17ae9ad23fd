"""The TF-IDF ranker: follows first, related articles capped, freshness, reading, floors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import sparse

from recommender.model import CorpusModel, Doc, fit
from recommender.ranker import RankRequest
from recommender.tfidf import TfidfRanker

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


# -- reading history, at the level of content ---------------------------------------------

UKRAINE = "Ukraine Kyiv Russian troops Kharkiv front offensive shelling"
STORMS = "hurricane storm flooding evacuation coast winds rainfall"
POLITICS = "senate vote bill congress election campaign governor"


def text_of(words: str, n: int) -> str:
    """A headline of a topic: its words in a rotating order, and one word of its own."""
    parts = words.split()
    return " ".join(parts[n % len(parts) :] + parts[: n % len(parts)][:2]) + f" item{n}"


def news_model() -> CorpusModel:
    """World news about two topics, and politics; every article an hour apart."""
    docs = []
    for n in range(30):
        docs.append(Doc(f"ua{n}", text_of(UKRAINE, n), ("world",), NOW - (3 * n + 1) * HOUR))
        docs.append(Doc(f"st{n}", text_of(STORMS, n), ("world",), NOW - (3 * n + 0.5) * HOUR))
        docs.append(Doc(f"po{n}", text_of(POLITICS, n), ("politics",), NOW - (3 * n + 2) * HOUR))
    return fit(docs)


def clicks(*ids: str) -> tuple[tuple[str, float], ...]:
    return tuple((article_id, NOW - 60.0 * k) for k, article_id in enumerate(ids))


def test_clicks_on_a_topic_raise_that_topic_not_its_category():
    model = news_model()
    followed = ("politics", "world")
    before = TfidfRanker().rank(model, RankRequest(followed, NOW, 20))
    read = clicks(*(f"ua{n}" for n in range(10)))
    after = TfidfRanker().rank(model, RankRequest(followed, NOW, 20, frozenset(dict(read)), read))
    share = [sum(r.id.startswith("ua") for r in page) / 20 for page in (before, after)]
    assert share[1] >= share[0] + 0.25 and share[1] >= 0.35
    # The other world topic is what makes room, and politics keeps a place.
    assert sum(r.id.startswith("st") for r in after) < sum(r.id.startswith("st") for r in before)
    assert sum(r.id.startswith("po") for r in after) >= 2


def test_items_moved_by_reading_name_the_read_they_resemble():
    model = news_model()
    read = clicks("ua0", "st0")
    ranked = TfidfRanker().rank(
        model, RankRequest(("politics", "world"), NOW, 40, frozenset(dict(read)), read)
    )
    moved = [r for r in ranked if r.reason == "read"]
    assert moved
    for r in moved:
        assert r.because == ("ua0" if r.id.startswith("ua") else "st0")
    assert all(r.because == "" for r in ranked if r.reason != "read")


def test_one_click_moves_the_feed_less_than_ten():
    model = news_model()
    followed = ("politics", "world")

    def share_after(n: int) -> float:
        read = clicks(*(f"ua{k}" for k in range(n)))
        page = TfidfRanker().rank(
            model, RankRequest(followed, NOW, 20, frozenset(dict(read)), read)
        )
        return sum(r.id.startswith("ua") for r in page) / 20

    assert share_after(0) <= share_after(1) < share_after(10)


def test_without_history_the_feed_is_the_follow_ranking():
    """No reading: each article scores (similarity + follow weight) × freshness, in order."""
    model = news_model()
    ranker = TfidfRanker()
    for history in ((), clicks("not-in-the-model")):
        ranked = ranker.rank(model, RankRequest(("world",), NOW, 60, history=history))
        col = model.slugs.index("world")
        newest = model.published.max()  # ages count from it, as it is older than now
        norm = float(np.sqrt(model.gram[col, col]))
        expected = {
            str(model.ids[i]): (model.sims[i, col] / norm + ranker.follow_weight)
            * 0.5 ** ((newest - model.published[i]) / 3600 / ranker.half_life_hours)
            for i in range(model.size)
            if model.members[i, col]
        }
        assert [r.id for r in ranked] == sorted(expected, key=lambda i: -expected[i])
        assert [r.score for r in ranked] == pytest.approx([expected[r.id] for r in ranked])


def test_an_archive_ranks_as_if_it_were_new():
    """Years-old articles keep their relative freshness instead of decaying to tied zeros."""
    model = news_model()
    years = 5 * 365 * 24 * HOUR
    read = clicks("ua0", "ua1")
    request = RankRequest(("politics", "world"), NOW, 40, frozenset(dict(read)), read)
    live = TfidfRanker().rank(model, request)
    model.published = model.published - years
    archive = TfidfRanker().rank(model, request)
    assert [r.id for r in archive] == [r.id for r in live]
    assert len({r.score for r in archive}) == len(archive)


# -- every followed category keeps a place ------------------------------------------------


@pytest.mark.parametrize("follows", [2, 3, 4, 5])
def test_every_followed_category_keeps_two_of_the_first_twenty(follows):
    """Category 'a' is fresher and closer to the profile than every other by far."""
    slugs = tuple("abcde")[:follows]
    rows = [(f"a{i}", "a", 0.9, i * 0.1) for i in range(60)]
    rows += [(f"{s}{i}", s, 0.1, 40.0 + i) for s in slugs[1:] for i in range(10)]
    model = model_of(rows, slugs)
    ranked = TfidfRanker().rank(model, RankRequest(slugs, NOW, len(rows)))
    first = [r.id[0] for r in ranked[:20]]
    assert all(first.count(s) >= 2 for s in slugs), first
    ids = [r.id for r in ranked]
    assert sorted(ids) == sorted(r[0] for r in rows)
    # The 'a' articles that made room come right after the first page, in their order.
    made_room = 2 * (follows - 1)
    assert ids[:20] == [f"a{i}" for i in range(20 - made_room)] + ids[20 - made_room : 20]
    assert ids[20 : 20 + made_room] == [f"a{i}" for i in range(20 - made_room, 20)]


def test_a_category_with_nothing_left_needs_no_place():
    rows = [(f"a{i}", "a", 0.9, 1.0) for i in range(30)] + [("b0", "b", 0.1, 50.0)]
    model = model_of(rows)
    ranked = TfidfRanker().rank(model, RankRequest(("a", "b"), NOW, 20, frozenset({"b0"})))
    assert [r.id[0] for r in ranked] == ["a"] * 20


# -- offline evaluation ranks an impression's candidates --------------------------------------


def test_candidates_limit_what_is_ranked():
    model = news_model()
    read = clicks("ua0", "ua1")
    candidates = frozenset({"ua5", "st5", "po5", "unknown"})
    ranked = TfidfRanker().rank(
        model, RankRequest((), NOW, 10, history=read, candidates=candidates)
    )
    assert {r.id for r in ranked} <= candidates - {"unknown"}
    assert ranked[0].id == "ua5"
