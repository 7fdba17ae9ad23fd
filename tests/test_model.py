"""Fitting the TF-IDF corpus model and shipping it as an artifact."""

from __future__ import annotations

import numpy as np
import pytest

from feed.demo import generate_articles
from recommender.model import CorpusModel, Doc, fit


def docs_from_demo(count: int = 400) -> list[Doc]:
    return [
        Doc(a["id"], f"{a['title']}\n{a['summary']}\n{a['body']}", tuple(a["categories"]), float(n))
        for n, a in enumerate(generate_articles(count))
    ]


def test_articles_are_closest_to_their_own_category_centroid():
    docs = docs_from_demo()
    model = fit(docs)
    assert model.size == len(docs)
    primary = [model.slugs.index(d.categories[0]) for d in docs]
    nearest = model.sims.argmax(axis=1)
    assert np.mean(nearest == np.array(primary)) > 0.95


def test_centroid_gram_matrix_has_unit_diagonal():
    model = fit(docs_from_demo(200))
    assert np.allclose(np.diag(model.gram), 1.0, atol=1e-5)


def test_artifact_round_trips():
    model = fit(docs_from_demo(100))
    loaded = CorpusModel.from_bytes(model.to_bytes())
    assert list(loaded.ids) == list(model.ids)
    assert np.array_equal(loaded.sims, model.sims)
    assert loaded.slugs == model.slugs


def test_an_artifact_of_another_format_is_refused(monkeypatch):
    blob = fit(docs_from_demo(20)).to_bytes()
    monkeypatch.setattr("recommender.model.ARTIFACT_FORMAT", 999)
    with pytest.raises(ValueError, match="does not match"):
        CorpusModel.from_bytes(blob)


def test_an_empty_model_round_trips():
    loaded = CorpusModel.from_bytes(fit([]).to_bytes())
    assert loaded.size == 0 and loaded.slugs == []


def test_an_empty_corpus_fits_an_empty_model():
    model = fit([])
    assert model.size == 0 and model.slugs == []


def test_a_corpus_of_stop_words_still_fits():
    model = fit([Doc("a", "the and of", ("x",), 0.0), Doc("b", "", ("y",), 0.0)])
    assert model.size == 2 and model.sims.shape == (2, 2)
