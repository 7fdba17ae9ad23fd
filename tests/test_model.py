"""Fitting the TF-IDF corpus model and shipping it as an artifact."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from devtools.demo import generate_articles
from recommender.model import PER_ARTICLE, CorpusModel, Doc, fit
from recommender.vocabulary import make_vectorizer


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


# -- vectorising articles written after the fit (breaking news)


def test_vectorize_gives_the_rows_the_fit_gave():
    docs = docs_from_demo(200)
    model = CorpusModel.from_bytes(fit(docs).to_bytes())
    rows = model.vectorize([d.text for d in docs[:20]])
    assert abs(rows - model.vectors[:20]).max() < 1e-6


def test_vectorize_gives_the_floats_of_the_fits_vectorizer_with_every_term():
    docs = docs_from_demo(300)
    vocabulary = fit(docs).vocabulary
    terms = bytes(vocabulary.terms).decode().split("\n")
    reference = make_vectorizer(0)
    reference.set_params(vocabulary={term: column for column, term in enumerate(terms)})
    reference.idf_ = vocabulary.idf
    texts = [
        *(d.text for d in docs[250:]),
        "",  # nothing
        "the and of it",  # stop words only
        "Zzyzx qwertyuiop",  # no known term
        "Élections élections ÉLECTIONS health health health über-long-words",
        f"{terms[0]} {terms[-1]} {terms[len(terms) // 2]} {terms[0]}",  # the first and last
    ]
    got = vocabulary.transform(texts)
    want = sparse.csr_matrix(reference.transform(texts), dtype=np.float32)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.array_equal(got.indptr, want.indptr)
    assert np.array_equal(got.indices, want.indices)
    assert np.array_equal(got.data, want.data)  # the same floats, not close ones


def test_every_term_is_found_in_its_column_and_no_other_word_is():
    vocabulary = fit(docs_from_demo(200)).vocabulary
    terms = bytes(vocabulary.terms).decode().split("\n")
    assert [vocabulary.column(t) for t in terms] == list(range(len(terms)))
    for word in ("", "a", "zzzzzz", terms[0][:-1], terms[-1] + "z", terms[3] + " "):
        assert vocabulary.column(word) is None, word


def test_an_appended_article_gets_a_row_like_a_refit_would_give():
    docs = docs_from_demo(401)
    model = fit(docs[:400])
    extended = model.with_articles([docs[400]])
    refit = fit(docs)
    row = extended.row_of[docs[400].id]
    assert row == 400 and extended.size == 401 and model.size == 400
    assert extended.ids[row] == docs[400].id and extended.published[row] == docs[400].published
    assert [extended.slugs[c] for c in np.flatnonzero(extended.members[row])] == list(
        docs[400].categories
    )
    # Close, not equal: in the refit the article is part of its own category's centroid.
    refitted = refit.sims[refit.row_of[docs[400].id]]
    assert np.allclose(extended.sims[row], refitted, atol=0.05)
    assert extended.sims[row].argmax() == refitted.argmax()
    # The rows it had are untouched, in the new model and in the old one.
    assert np.array_equal(extended.sims[:400], model.sims)
    assert abs(extended.vectors[:400] - model.vectors).max() == 0


def test_a_known_article_has_its_row_replaced():
    docs = docs_from_demo(100)
    model = fit(docs)
    other = next(d for d in docs if d.categories != docs[5].categories)
    moved = Doc(docs[5].id, other.text, other.categories, 99.0)
    extended = model.with_articles([moved])
    assert extended.size == 100 and extended.row_of == model.row_of
    row = model.row_of[moved.id]
    assert [extended.slugs[c] for c in np.flatnonzero(extended.members[row])] == list(
        other.categories
    )
    assert extended.published[row] == 99.0
    assert abs(extended.vectors[row] - model.vectors[model.row_of[other.id]]).max() < 1e-6
    assert np.allclose(extended.sims[row], model.sims[model.row_of[other.id]], atol=1e-5)
    unchanged = [r for r in range(100) if r != row]
    assert abs(extended.vectors[unchanged] - model.vectors[unchanged]).max() == 0
    assert model.published[row] != 99.0, "the model it extends stays as it was"


def test_an_article_in_a_category_the_fit_did_not_know_gets_that_category():
    docs = docs_from_demo(100)
    model = fit(docs)
    first = Doc("q-1", docs[0].text, ("quantum",), 1.0)
    once = model.with_articles([first])
    assert once.slugs == [*model.slugs, "quantum"]
    column = once.slugs.index("quantum")
    assert once.members[once.row_of["q-1"], column]
    assert once.sims[once.row_of["q-1"], column] == pytest.approx(1.0, abs=1e-5)
    assert once.gram[column, column] == pytest.approx(1.0, abs=1e-5)
    # A second article moves the new centroid (the fitted ones stay as fitted).
    twice = once.with_articles([Doc("q-2", docs[1].text, ("quantum",), 2.0)])
    assert twice.sims[twice.row_of["q-1"], column] < 1.0
    assert np.array_equal(twice.gram[:-1, :-1], model.gram)
    assert twice.category_index(["quantum"]) == [column]


def test_an_extended_model_extends_again_and_keeps_its_row_index():
    docs = docs_from_demo(60)
    model = fit(docs[:50])
    extended = model.with_articles(docs[50:55]).with_articles([*docs[55:], docs[2]])
    assert extended.size == 60
    assert extended.row_of == {str(i): row for row, i in enumerate(extended.ids)}
    assert list(extended.ids) == [d.id for d in docs]


def test_models_without_a_vocabulary_still_take_articles():
    for model in (fit([]), fit([Doc("a", "the and of", ("x",), 0.0)])):
        extended = model.with_articles([Doc("b", "rockets launch today", ("y",), 1.0)])
        assert extended.row_of["b"] == model.size
        assert extended.slugs[-1] == "y" and extended.members[-1, -1]
        assert extended.vectors.shape[0] == model.size + 1


def test_the_vocabulary_round_trips():
    docs = docs_from_demo(100)
    loaded = CorpusModel.from_bytes(fit(docs).to_bytes())
    again = CorpusModel.from_bytes(loaded.to_bytes())
    assert np.array_equal(again.vocabulary.terms, loaded.vocabulary.terms)
    assert np.array_equal(again.vocabulary.idf, loaded.vocabulary.idf)
    assert abs(again.vectorize([docs[0].text]) - loaded.vectors[0]).max() < 1e-6


def test_a_prepared_model_is_the_same_and_grows_in_place():
    docs = docs_from_demo(60)
    model = fit(docs[:50])
    prepared = model.prepared()
    assert abs(prepared.vectors - model.vectors).max() == 0 and prepared.row_of == model.row_of
    once = prepared.with_articles([docs[50]])
    twice = once.with_articles([docs[51]])
    assert np.shares_memory(once.vectors.data, twice.vectors.data), "appended in place"
    # A model that is no longer the newest of its storage is extended by a copy: each model
    # keeps the rows it was built with.
    branch = once.with_articles([docs[52]])
    assert not np.shares_memory(branch.vectors.data, twice.vectors.data)
    assert abs(twice.vectors[51] - twice.vectorize([docs[51].text])).max() < 1e-6
    assert abs(branch.vectors[51] - branch.vectorize([docs[52].text])).max() < 1e-6
    assert abs(twice.vectors[:51] - once.vectors).max() == 0
    assert abs(branch.vectors[:51] - once.vectors).max() == 0
    # The per-article arrays likewise: the first extension copies them (an in-memory model
    # has no room), the next appends to that copy, a branch copies again.
    for name in PER_ARTICLE:
        assert np.shares_memory(getattr(once, name), getattr(twice, name)), name
        assert not np.shares_memory(getattr(branch, name), getattr(twice, name)), name
    assert list(twice.ids) == [d.id for d in docs[:52]]
    assert list(branch.ids) == [d.id for d in [*docs[:51], docs[52]]]
    assert twice.published[51] == docs[51].published and branch.published[51] == docs[52].published


def appended(model: CorpusModel, docs: list[Doc]) -> CorpusModel:
    """The reference for new articles of fitted categories: every array concatenated, as
    extensions did before they wrote into room."""
    fresh = model.vectorize([d.text for d in docs])
    members = np.zeros((len(docs), len(model.slugs)), dtype=np.bool_)
    for row, doc in enumerate(docs):
        assert set(doc.categories) <= set(model.slugs)
        members[row, model.category_index(list(doc.categories))] = True
    return CorpusModel(
        np.concatenate([model.ids, np.array([d.id for d in docs])]),
        np.concatenate([model.published, [d.published for d in docs]]),
        model.slugs,
        np.concatenate([model.members, members]),
        np.concatenate([model.sims, (fresh @ model.fitted_centroids.T).toarray()]),
        model.gram,
        sparse.vstack([model.vectors, fresh], format="csr"),
        model.vocabulary,
        model.fitted_centroids,
    )


def same_arrays(one: CorpusModel, other: CorpusModel) -> bool:
    return (
        all(np.array_equal(getattr(one, n), getattr(other, n)) for n in (*PER_ARTICLE, "gram"))
        and one.slugs == other.slugs
        and (one.vectors != other.vectors).nnz == 0
    )


def test_appending_in_place_gives_the_arrays_of_concatenating():
    docs = docs_from_demo(80)
    model = fit(docs[:60]).prepared()
    once = model.with_articles(docs[60:70])
    twice = once.with_articles(docs[70:])
    assert same_arrays(once, appended(model, docs[60:70]))
    assert same_arrays(twice, appended(appended(model, docs[60:70]), docs[70:]))
    for name in PER_ARTICLE:  # the model extended is left as it was, and read-only
        assert not getattr(twice, name).flags.writeable, name
        assert len(getattr(model, name)) == 60


def test_a_longer_id_than_any_before_widens_a_copy_of_the_ids():
    docs = docs_from_demo(30)
    once = fit(docs[:20]).with_articles(docs[20:25])
    long_id = "x" * (once.ids.dtype.itemsize // 4 + 5)
    twice = once.with_articles([Doc(long_id, docs[25].text, docs[25].categories, 1.0)])
    assert twice.ids[-1] == long_id and list(twice.ids[:-1]) == list(once.ids)
    assert not np.shares_memory(twice.ids, once.ids)
    assert twice.row_of[long_id] == 25


def test_a_model_is_built_around_its_arrays_without_copying_them():
    arrays = fit(docs_from_demo(100)).to_arrays(derived=True)
    for array in arrays.values():
        array.flags.writeable = False  # as a read-only memory map's
    model = CorpusModel.from_arrays(arrays)
    assert np.shares_memory(model.sims, arrays["sims"])
    assert np.shares_memory(model.vectors.data, arrays["vectors_data"])
    assert np.shares_memory(model.vectors.indices, arrays["vectors_indices"])
    assert model.centroids is not None
    assert np.shares_memory(model.centroids.data, arrays["centroids_data"])
