"""A fitted TF-IDF vocabulary: the settings every fit uses, and new text vectorised exactly as
the fit did, by binary search in terms a host's processes may share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

# Bounds the vocabulary (and so model size and fit time) on large corpora.
MAX_FEATURES = 2**17


def make_vectorizer(documents: int) -> TfidfVectorizer:
    """The TF-IDF settings every fit uses, online and in offline evaluation alike."""
    return TfidfVectorizer(
        max_features=MAX_FEATURES,
        sublinear_tf=True,
        stop_words="english",
        min_df=1,
        # Terms in most documents say nothing about any one; tiny corpora keep everything.
        max_df=0.9 if documents >= 20 else 1.0,
        dtype=np.float32,
    )


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """The fitted vectorizer's state: enough to vectorise new text exactly as the fit did.

    Looked up by binary search over ``terms``, which may be a read-only map that a host's
    processes share: a dict of a 131k-term vocabulary would be each process's own 15 MB.
    """

    # UTF-8, one term per line (a token never holds a newline), in column order, which is
    # sorted: a fit numbers its terms in sorted order (``of`` checks).
    terms: NDArray[np.uint8]
    idf: NDArray[np.float32]

    @classmethod
    def of(cls, vectorizer: TfidfVectorizer) -> Vocabulary:
        names: list[str] = vectorizer.get_feature_names_out().tolist()
        if names != sorted(names):
            raise ValueError("the fitted terms are not in sorted column order")
        terms = np.frombuffer("\n".join(names).encode(), dtype=np.uint8)
        return cls(terms, np.asarray(vectorizer.idf_, dtype=np.float32))

    @property
    def size(self) -> int:
        return len(self.idf)

    @cached_property
    def _starts(self) -> NDArray[np.int64]:
        """Where each term starts in ``terms``, then one past the end: term ``j`` is
        ``terms[starts[j] : starts[j + 1] - 1]`` (1 MB at 131k terms)."""
        breaks = np.flatnonzero(self.terms == NEWLINE)
        return np.concatenate(([0], breaks + 1, [len(self.terms) + 1])).astype(np.int64)

    @cached_property
    def _analyzer(self) -> Callable[[str], list[str]]:
        """A text's tokens as the fit saw them: its preprocessing, token pattern, stop words."""
        analyzer: Callable[[str], list[str]] = make_vectorizer(0).build_analyzer()
        return analyzer

    def column(self, token: str) -> int | None:
        """The column of ``token``, or None: binary search in the sorted terms (UTF-8 bytes
        sort as the strings do)."""
        key, terms, starts = token.encode(), self.terms, self._starts
        lo, hi = 0, self.size
        while lo < hi:
            mid = (lo + hi) // 2
            if terms[starts.item(mid) : starts.item(mid + 1) - 1].tobytes() < key:
                lo = mid + 1
            else:
                hi = mid
        if lo < self.size and terms[starts.item(lo) : starts.item(lo + 1) - 1].tobytes() == key:
            return lo
        return None

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """L2-normalised TF-IDF rows, in the fitted columns: the fit's own vectorizer, given
        only the terms these texts hold."""
        if self.size == 0:
            return sparse.csr_matrix((len(texts), 0), dtype=np.float32)
        tokens = [self._analyzer(text) for text in texts]
        found = {t: self.column(t) for t in {t for text in tokens for t in text}}
        known = sorted((column, t) for t, column in found.items() if column is not None)
        if not known:
            return sparse.csr_matrix((len(texts), self.size), dtype=np.float32)
        # The terms in column order: each row's entries come out in the same order as over
        # the whole vocabulary, so they are weighed and normalised to the same floats.
        columns = np.array([column for column, _ in known], dtype=np.int64)
        vectorizer = make_vectorizer(0)
        vectorizer.set_params(
            analyzer=_tokens_given,
            stop_words=None,  # applied by ``_analyzer`` already
            vocabulary={t: j for j, (_, t) in enumerate(known)},
        )
        vectorizer.idf_ = self.idf[columns]
        some = sparse.csr_matrix(vectorizer.transform(tokens), dtype=np.float32)
        return sparse.csr_matrix(
            (some.data, columns[some.indices].astype(some.indices.dtype), some.indptr),
            shape=(len(texts), self.size),
        )


def _tokens_given(tokens: list[str]) -> list[str]:
    """The analyzer of texts already split into tokens."""
    return tokens


NEWLINE = ord("\n")
EMPTY_VOCABULARY = Vocabulary(np.zeros(0, dtype=np.uint8), np.zeros(0, dtype=np.float32))
