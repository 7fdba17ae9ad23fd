"""Article id to row, kept in plain arrays (a hash table over the ids) that the processes of a
host can share from a memory-mapped file: a dict of 100k ids is each process's own 13 MB."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

EMPTY = -1  # a free slot
# Slots per id (a power of two at least this): with half the slots free, a lookup probes
# about 1.5 slots.
SLOTS_PER_ID = 2


def _slot(key: str) -> int:
    # Stable across processes, unlike hash(str), which each process salts.
    return zlib.crc32(key.encode())


def build_table(ids: NDArray[np.str_]) -> NDArray[np.signedinteger[Any]]:
    """The open-addressing table (linear probing) of ``ids``: slot to row, or EMPTY."""
    size = 8
    while size < SLOTS_PER_ID * len(ids):
        size *= 2
    mask = size - 1
    slots = [EMPTY] * size
    keys = ids.tolist()
    for row, key in enumerate(keys):
        slot = _slot(key) & mask
        while slots[slot] != EMPTY and keys[slots[slot]] != key:
            slot = (slot + 1) & mask
        slots[slot] = row  # a repeated id: the last row wins, as in a dict
    dtype = np.int32 if len(ids) < np.iinfo(np.int32).max else np.int64
    return np.array(slots, dtype=dtype)


class RowIndex(Mapping[str, int]):
    """The rows of ``ids`` by ``table`` (``build_table``), plus ``added``: ids appended since
    (a process's own, few). Reads the arrays only: they may be a read-only memory map."""

    __slots__ = ("_ids", "_table", "_mask", "_added", "_size")

    def __init__(
        self,
        ids: NDArray[np.str_],
        table: NDArray[np.signedinteger[Any]],
        added: Mapping[str, int] | None = None,
    ) -> None:
        self._ids = ids
        self._table = table
        self._mask = len(table) - 1
        self._added = dict(added or {})
        self._size = len(ids) + len(self._added)

    def with_added(self, added: Mapping[str, int]) -> RowIndex:
        """This index and the rows of ``added``, ids it does not hold."""
        return RowIndex(self._ids, self._table, {**self._added, **added})

    def get(self, key: object, default: Any = None) -> Any:
        if self._added:
            row = self._added.get(key)  # type: ignore[call-overload]
            if row is not None:
                return row
        if not isinstance(key, str):
            return default
        table, ids, mask = self._table, self._ids, self._mask
        slot = _slot(key) & mask
        while True:
            row = table.item(slot)
            if row == EMPTY:
                return default
            if ids.item(row) == key:
                return row
            slot = (slot + 1) & mask

    def __getitem__(self, key: str) -> int:
        row: int | None = self.get(key)
        if row is None:
            raise KeyError(key)
        return row

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[str]:
        yield from self._ids.tolist()
        yield from self._added
