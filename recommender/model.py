"""The fitted TF-IDF corpus model: article-to-category similarities, shipped as one artifact."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

# Bounds the vocabulary (and so model size and fit time) on large corpora.
MAX_FEATURES = 2**17
# Bumped whenever the arrays below change meaning; older artifacts are then refitted.
ARTIFACT_FORMAT = 3


@dataclass(frozen=True)
class Doc:
    id: str
    text: str
    categories: tuple[str, ...]
    published: float  # epoch seconds


@dataclass
class CorpusModel:
    """What ranking needs, precomputed at fit time so a cold feed is a few vector operations.

    ``sims[i, c]`` is the cosine between article ``i`` and the centroid of category ``c``;
    ``gram`` holds the centroids' pairwise dot products, so the norm of any sum of centroids
    (a user profile) is known without touching the vocabulary. ``vectors`` keeps the
    L2-normalised TF-IDF rows themselves, for profiles built from a reading history.
    """

    ids: NDArray[np.str_]
    published: NDArray[np.float64]
    slugs: list[str]
    members: NDArray[np.bool_]  # (n_articles, n_categories)
    sims: NDArray[np.float32]  # (n_articles, n_categories)
    gram: NDArray[np.float64]  # (n_categories, n_categories)
    vectors: sparse.csr_matrix  # (n_articles, n_terms), rows L2-normalised

    @property
    def size(self) -> int:
        return len(self.ids)

    @cached_property
    def row_of(self) -> dict[str, int]:
        """Row of each article id, built once per loaded model."""
        return {str(article_id): row for row, article_id in enumerate(self.ids)}

    def category_index(self, slugs: Sequence[str]) -> list[int]:
        position = {s: i for i, s in enumerate(self.slugs)}
        return [position[s] for s in slugs if s in position]

    def to_bytes(self) -> bytes:
        """Plain numpy arrays (no pickle): safe to load, and independent of library versions."""
        buffer = io.BytesIO()
        arrays: dict[str, Any] = {
            f.name: np.asarray(getattr(self, f.name)) for f in fields(self) if f.name != "vectors"
        }
        np.savez(
            buffer,
            format=np.array(ARTIFACT_FORMAT),
            vectors_data=self.vectors.data,
            vectors_indices=self.vectors.indices,
            vectors_indptr=self.vectors.indptr,
            vectors_shape=np.array(self.vectors.shape),
            **arrays,
        )
        return buffer.getvalue()

    @staticmethod
    def from_bytes(blob: bytes) -> CorpusModel:
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            found = int(data["format"]) if "format" in data else None
            if found != ARTIFACT_FORMAT:
                raise ValueError(f"model artifact format {found} does not match {ARTIFACT_FORMAT}")
            return CorpusModel(
                ids=data["ids"],
                published=data["published"],
                slugs=data["slugs"].tolist(),
                members=data["members"],
                sims=data["sims"],
                gram=data["gram"],
                vectors=sparse.csr_matrix(
                    (data["vectors_data"], data["vectors_indices"], data["vectors_indptr"]),
                    shape=tuple(data["vectors_shape"]),
                ),
            )


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


def fit(docs: Sequence[Doc]) -> CorpusModel:
    slugs = sorted({slug for doc in docs for slug in doc.categories})
    n, k = len(docs), len(slugs)
    members = np.zeros((n, k), dtype=np.bool_)
    column = {slug: j for j, slug in enumerate(slugs)}
    for i, doc in enumerate(docs):
        for slug in doc.categories:
            members[i, column[slug]] = True
    ids = np.array([d.id for d in docs], dtype=np.str_)
    published = np.array([d.published for d in docs], dtype=np.float64)
    if n == 0:
        return CorpusModel(
            ids,
            published,
            slugs,
            members,
            np.zeros((0, 0), np.float32),
            np.zeros((0, 0)),
            sparse.csr_matrix((0, 0), dtype=np.float32),
        )

    try:
        matrix = make_vectorizer(n).fit_transform([d.text for d in docs])
    except ValueError:  # every document is empty or stop words only
        return CorpusModel(
            ids,
            published,
            slugs,
            members,
            np.zeros((n, k), np.float32),
            np.eye(k),
            sparse.csr_matrix((n, 0), dtype=np.float32),
        )
    # Category centroids: the mean of member vectors, normalised so categories weigh equally.
    membership = members.astype(np.float32)
    counts = np.maximum(membership.sum(axis=0), 1.0)
    centroids = np.asarray((matrix.T @ membership).T) / counts[:, None]
    centroids = normalize(centroids)
    sims = np.asarray(matrix @ centroids.T, dtype=np.float32)
    gram = centroids @ centroids.T
    return CorpusModel(
        ids, published, slugs, members, sims, gram.astype(np.float64), sparse.csr_matrix(matrix)
    )
