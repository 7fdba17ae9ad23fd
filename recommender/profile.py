"""A reader's reading profile: what they clicked and read, as TF-IDF content and category shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from recommender.model import CorpusModel

# How much of the profile's pull along its categories' centroids closeness leaves out: most,
# so a topic inside a category stands out from the category's usual wording; not all, so a
# reader who reads a whole category still leans a little toward it.
CATEGORY_DISCOUNT = 0.75


@dataclass(frozen=True)
class Reading:
    """The reads the model knows, each weighing by recency (1 now, halving every half-life)."""

    rows: NDArray[np.intp]
    weights: NDArray[np.float32]
    unit: NDArray[np.float32] | None  # the weighted sum of their vectors, L2-normalised
    # CATEGORY_DISCOUNT × the profile's component along each read category's centroid (0 for
    # the others): what any article of those categories shares with it, out of ``closeness``.
    along: NDArray[np.float32] | None = None

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
        """How close these articles (None: every row from ``start`` on) are to what the reads
        share beyond their categories: the cosine to the profile, less (most of) the part any
        article of the read categories gets through the categories' centroids. That is what makes
        reading move a topic, not a category (and not the wording all its articles share)."""
        count = model.size - start if rows is None else rows.size
        if self.unit is None:
            return np.zeros(count)
        vectors = _tail(model.vectors, start) if rows is None else model.vectors[rows]
        result: NDArray[np.float64] = np.asarray(vectors @ self.unit, dtype=np.float64)
        if self.along is not None:
            sims = model.sims[start:] if rows is None else model.sims[rows]
            result -= sims @ self.along
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
    if not model.vectors.shape[1]:
        return Reading(found, weight, None)
    profile = np.asarray(model.vectors[found].T @ weight, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(profile))
    if norm == 0.0:
        return Reading(found, weight, None)
    # unit · centroid_c = Σ w_r (v_r · centroid_c) / |profile|, and v_r · centroid_c = sims[r, c].
    read_categories = model.members[found].any(axis=0)
    along = CATEGORY_DISCOUNT * (weight @ model.sims[found]) / norm
    along = np.where(read_categories, along, 0.0).astype(np.float32)
    return Reading(found, weight, profile / norm, along)
