"""Arrays that grow by rows in place: a model extended with new articles appends their vectors,
ids, times, categories and similarities to its parent's storage, instead of copying every row
(66 MB of vectors and 15 MB of the rest at 100k articles)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

# Room left past the entries of a copied matrix, so that the next few thousand appended
# articles need no copy.
SPARE_SHARE = 0.125
MIN_SPARE = 1024


class Storage:
    """Arrays with room past their first ``used`` entries (rows, along the first axis), behind
    a chain of models, each holding a prefix of the next's: a matrix's data and indices, or a
    model's per-article arrays.

    Only the longest may grow, and in place: no model reads past its own end, so writing
    there is safe while requests rank with the shorter ones.
    """

    def __init__(self, arrays: Mapping[str, NDArray[Any]], used: int) -> None:
        self.arrays = dict(arrays)
        self._capacity = min((len(array) for array in self.arrays.values()), default=0)
        self._used = used
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> NDArray[Any]:
        return self.arrays[name]

    def claim(self, start: int, count: int) -> bool:
        """Take entries ``start..start+count`` to write: only past the longest model's end
        (``start``), and only while they fit."""
        with self._lock:
            if start != self._used or start + count > self._capacity:
                return False
            self._used = start + count
            return True


def set_rows(
    base: sparse.csr_matrix,
    storage: Storage | None,
    fresh: sparse.csr_matrix,
    rows: NDArray[np.intp],
) -> tuple[sparse.csr_matrix, Storage]:
    """``base`` with row ``rows[j]`` set to ``fresh[j]`` (rows past its end are appended, in
    order), and the storage behind the result. ``base`` itself is left as it is."""
    n, m = base.shape[0], fresh.shape[0]
    start, count = int(base.indptr[-1]), int(fresh.indptr[-1])
    appending = np.array_equal(rows, np.arange(n, n + m))
    if appending and storage is not None and storage.claim(start, count):
        end = start + count
        storage["data"][start:end] = fresh.data
        storage["indices"][start:end] = fresh.indices
        indptr = np.concatenate([base.indptr, start + fresh.indptr[1:]], dtype=base.indptr.dtype)
        matrix = sparse.csr_matrix(
            (storage["data"][:end], storage["indices"][:end], indptr),
            shape=(n + m, base.shape[1]),
        )
        return matrix, storage
    return _copy(base, fresh, rows)


def capacity_for(used: int) -> int:
    """Entries a storage holding ``used`` entries is given: the spare room is part of it."""
    return used + max(int(used * SPARE_SHARE), MIN_SPARE)


def spare_copy(matrix: sparse.csr_matrix) -> tuple[sparse.csr_matrix, Storage]:
    """``matrix`` copied into a storage with room to append after it."""
    empty = sparse.csr_matrix((0, matrix.shape[1]), dtype=np.float32)
    return _copy(matrix, empty, np.zeros(0, dtype=np.intp))


def _copy(
    base: sparse.csr_matrix, fresh: sparse.csr_matrix, rows: NDArray[np.intp]
) -> tuple[sparse.csr_matrix, Storage]:
    """A new storage with room to spare, filled in a few slices: indexing 100k rows by an
    array instead takes 20x longer."""
    n = base.shape[0]
    total = max(n, int(rows.max()) + 1) if rows.size else n
    lengths = np.zeros(total, dtype=np.int64)
    lengths[:n] = np.diff(base.indptr)
    lengths[rows] = np.diff(fresh.indptr)
    indptr = np.zeros(total + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    used = int(indptr[-1])
    capacity = capacity_for(used)
    index_type = np.int32 if capacity < np.iinfo(np.int32).max else np.int64
    data = np.empty(capacity, dtype=np.float32)
    indices: NDArray[np.signedinteger[Any]] = np.empty(capacity, dtype=index_type)
    filled = 0

    def take(matrix: sparse.csr_matrix, first: int, stop: int) -> None:
        nonlocal filled
        lo, hi = int(matrix.indptr[first]), int(matrix.indptr[stop])
        data[filled : filled + hi - lo] = matrix.data[lo:hi]
        indices[filled : filled + hi - lo] = matrix.indices[lo:hi]
        filled += hi - lo

    next_row = 0  # the next base row not copied yet
    for j in np.argsort(rows, kind="stable"):
        row = int(rows[j])
        take(base, next_row, min(row, n))
        take(fresh, int(j), int(j) + 1)
        next_row = min(row + 1, n)
    take(base, next_row, n)
    matrix = sparse.csr_matrix(
        (data[:used], indices[:used], indptr.astype(index_type)), shape=(total, base.shape[1])
    )
    return matrix, Storage({"data": data, "indices": indices}, used)
