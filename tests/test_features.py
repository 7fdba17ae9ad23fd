"""The learned ranker's features: one function, the same values for training and serving."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.features import (
    COLUMN,
    FEATURES,
    FRESHNESS_HALF_LIFE_HOURS,
    HISTORY_HALF_LIFE_HOURS,
    PRIOR_CTR,
    PRIOR_STRENGTH,
    features,
    reading_of,
)
from recommender.model import CorpusModel, Doc, fit
from recommender.profile import reading_of as profile_reading_of
from recommender.ranker import RankRequest

NOW = 1_800_000_000.0
HOUR = 3600.0

TEXTS = {
    "sport": [
        "striker scores twice as united beat city in the derby",
        "tennis champion wins the open final in five sets",
        "marathon runner breaks the course record in the rain",
        "coach praises young keeper after cup penalty shootout",
    ],
    "science": [
        "telescope finds water vapour on a distant exoplanet",
        "mars rover drills rock samples near ancient lake bed",
        "new battery chemistry doubles storage for solar farms",
        "astronauts repair the space station solar array",
    ],
}


def corpus() -> CorpusModel:
    docs = []
    for slug, texts in TEXTS.items():
        for k, text in enumerate(texts):
            docs.append(Doc(f"{slug}{k}", text, (slug,), NOW - (k * 12 + 1) * HOUR))
    return fit(docs)


def column(matrix: np.ndarray, name: str) -> np.ndarray:
    return matrix[:, COLUMN[name]]


def test_an_article_has_the_same_features_among_a_few_candidates_as_in_the_whole_corpus() -> None:
    model = corpus()
    request = RankRequest(
        ("sport",),
        NOW,
        20,
        history=(("science1", NOW - HOUR), ("sport0", NOW - 2 * HOUR)),
        popularity={"science0": (3.0, 40.0), "sport2": (1.0, 5.0)},
    )
    everything = features(model, request)
    assert everything.shape == (model.size, len(FEATURES))
    rows = np.array([model.row_of["science0"], model.row_of["sport2"]], dtype=np.intp)
    few = features(model, request, rows)
    np.testing.assert_allclose(few, everything[rows])


def test_follows_freshness_and_popularity_are_what_they_say() -> None:
    model = corpus()
    request = RankRequest(("sport",), NOW, 20, popularity={"sport1": (4.0, 30.0)})
    matrix = features(model, request)
    row = model.row_of
    followed = column(matrix, "followed")
    assert followed[row["sport0"]] == 1.0 and followed[row["science0"]] == 0.0
    similarity = column(matrix, "follow_similarity")
    assert similarity[row["sport0"]] > similarity[row["science0"]]
    # sport1 is 13 hours old, sport3 37: freshness halves every FRESHNESS_HALF_LIFE_HOURS.
    freshness = column(matrix, "freshness")
    assert freshness[row["sport1"]] == pytest.approx(2 ** (-13 / FRESHNESS_HALF_LIFE_HOURS))
    assert freshness[row["sport3"]] / freshness[row["sport1"]] == pytest.approx(2 ** (-24 / 24))
    ctr = column(matrix, "ctr")
    expected = (4.0 + PRIOR_STRENGTH * PRIOR_CTR) / (30.0 + PRIOR_STRENGTH)
    assert ctr[row["sport1"]] == pytest.approx(expected)
    assert ctr[row["sport0"]] == pytest.approx(PRIOR_CTR)  # never shown: the prior
    assert column(matrix, "impressions_log")[row["sport1"]] == pytest.approx(np.log1p(30.0))


def test_a_reader_without_follows_or_reading_gets_zeros_for_them() -> None:
    matrix = features(corpus(), RankRequest((), NOW, 20))
    for name in (
        "follow_similarity",
        "followed",
        "follow_score",
        "history_similarity",
        "history_closeness",
        "history_pull",
        "category_lean",
    ):
        assert not column(matrix, name).any(), name


def test_reading_pulls_toward_the_topic_read_and_leans_to_its_category() -> None:
    model = corpus()
    history = (("science1", NOW - HOUR), ("science3", NOW - 2 * HOUR))  # mars, solar array
    matrix = features(model, RankRequest(("sport",), NOW, 20, history=history))
    row = model.row_of
    similarity = column(matrix, "history_similarity")
    # "solar farms" shares a word with the solar array; no sport shares any.
    assert similarity[row["science2"]] > max(similarity[row[f"sport{k}"]] for k in range(4))
    lean = column(matrix, "category_lean")
    assert lean[row["science0"]] == 1.0 and lean[row["sport0"]] == 0.0
    assert column(matrix, "history_pull").max() > 0.0


def test_the_fast_reading_profile_is_the_rankers_profile() -> None:
    model = corpus()
    history = (("science1", NOW - HOUR), ("sport2", NOW - 30 * HOUR), ("nope", NOW))
    ours = reading_of(model, history, NOW)
    theirs = profile_reading_of(model, history, NOW, HISTORY_HALF_LIFE_HOURS)
    assert ours is not None and theirs is not None
    assert ours.unit is not None and theirs.unit is not None
    np.testing.assert_array_equal(ours.rows, theirs.rows)
    np.testing.assert_allclose(ours.weights, theirs.weights)
    np.testing.assert_allclose(ours.unit, theirs.unit, atol=1e-6)
    np.testing.assert_allclose(ours.along, theirs.along, atol=1e-6)
