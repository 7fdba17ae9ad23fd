"""A reader's reading profile: what they clicked and read, as TF-IDF content and category shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from recommender.model import CorpusModel


@dataclass(frozen=True)
class Reading:
    """The reads the model knows, each weighing by recency (1 now, halving every half-life)."""

    rows: NDArray[np.intp]
    weights: NDArray[np.float32]
    unit: NDArray[np.float32] | None  # the weighted sum of their vectors, L2-normalised

    @property
    def mass(self) -> float:
        """How much reading there is: the sum of the recency weights."""
        return float(self.weights.sum())

    def category_share(self, model: CorpusModel) -> NDArray[np.float32]:
        """Each category's recency-weighted share of the reads, the most read one being 1."""
        per_category = self.weights @ model.members[self.rows].astype(np.float32)
        share: NDArray[np.float32] = per_category / max(float(per_category.max()), 1e-12)
        return share

    def closeness(
        self, model: CorpusModel, rows: NDArray[np.intp] | None = None, start: int = 0
    ) -> NDArray[np.float64]:
        """Cosine to the profile of these articles (None: every row from ``start`` on)."""
        count = model.size - start if rows is None else rows.size
        if self.unit is None:
            return np.zeros(count)
        vectors = _tail(model.vectors, start) if rows is None else model.vectors[rows]
        result: NDArray[np.float64] = np.asarray(vectors @ self.unit, dtype=np.float64)
        return result

    def nearest(self, model: CorpusModel, rows: Sequence[int]) -> list[str]:
        """For each of these articles, the read it resembles most (weighing recent reads more)."""
        if not rows:
            return []
        similarity = (model.vectors[list(rows)] @ model.vectors[self.rows].T).toarray()
        best = (similarity * self.weights).argmax(axis=1)
        return [str(model.ids[self.rows[int(b)]]) for b in best]


def _tail(matrix: sparse.csr_matrix, start: int) -> sparse.csr_matrix:
    """Rows ``start..`` of a CSR matrix, sharing its arrays: row slicing, and even the
    constructor given views, copy them (megabytes per ranking at 100k articles)."""
    if start == 0:
        return matrix
    begin, end = int(matrix.indptr[start]), int(matrix.indptr[-1])
    tail = sparse.csr_matrix((matrix.shape[0] - start, matrix.shape[1]), dtype=matrix.dtype)
    tail.data = matrix.data[begin:end]
    tail.indices = matrix.indices[begin:end]
    tail.indptr = matrix.indptr[start:] - matrix.indptr.dtype.type(begin)
    return tail


def reading_of(
    model: CorpusModel, history: Sequence[tuple[str, float]], now: float, half_life_hours: float
) -> Reading | None:
    """The profile of ``history`` (article id, when read), or None if the model knows none."""
    rows, weights = [], []
    for article_id, when in history:
        row = model.row_of.get(article_id)
        if row is not None:
            rows.append(row)
            age_hours = max(now - when, 0.0) / 3600.0
            weights.append(2.0 ** (-age_hours / half_life_hours))
    if not rows:
        return None
    found = np.array(rows, dtype=np.intp)
    weight = np.array(weights, dtype=np.float32)
    unit = None
    if model.vectors.shape[1]:
        profile = np.asarray(model.vectors[found].T @ weight, dtype=np.float32).ravel()
        norm = float(np.linalg.norm(profile))
        unit = profile / norm if norm > 0.0 else None
    return Reading(found, weight, unit)
