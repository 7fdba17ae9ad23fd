"""The fitted vocabulary (recommender/vocabulary.py) on real news: text written after the fit
gets exactly the floats the fit's own vectorizer gives it. Skipped where AG News is absent."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from bench import agnews
from recommender.model import fit
from recommender.vocabulary import make_vectorizer

pytestmark = pytest.mark.skipif(agnews.path() is None, reason="AG News is not on this machine")
HELD_OUT = 500


def test_held_out_real_stories_get_the_floats_of_the_fits_vectorizer() -> None:
    docs = [story.doc() for story in agnews.load(now=1_800_000_000.0)]
    vocabulary = fit(docs[:-HELD_OUT]).vocabulary
    terms = bytes(vocabulary.terms).decode().split("\n")
    assert len(terms) > 10_000  # a real vocabulary, not the demo's
    reference = make_vectorizer(0)
    reference.set_params(vocabulary={term: column for column, term in enumerate(terms)})
    reference.idf_ = vocabulary.idf
    texts = [doc.text for doc in docs[-HELD_OUT:]]
    got = vocabulary.transform(texts)
    want = sparse.csr_matrix(reference.transform(texts), dtype=np.float32)
    assert got.nnz > 0
    assert np.array_equal(got.indptr, want.indptr)
    assert np.array_equal(got.indices, want.indices)
    assert np.array_equal(got.data, want.data)  # the same floats, not close ones
