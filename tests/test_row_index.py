"""Article id to row from a hash table in plain arrays (recommender/row_index.py): a dict's
answers, from arrays a memory map can hold."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.row_index import RowIndex, build_table

IDS = np.array([f"a-{i}" for i in range(1000)] + ["", "é-ünïcode"])


def read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def test_every_id_finds_its_row_and_others_find_none():
    index = RowIndex(read_only(IDS.copy()), read_only(build_table(IDS)))
    assert {key: index[key] for key in IDS.tolist()} == {k: r for r, k in enumerate(IDS.tolist())}
    assert len(index) == len(IDS) and list(index) == IDS.tolist()
    for missing in ("a-1000", "b-1", "a-", 7, None):
        assert missing not in index and index.get(missing) is None
    with pytest.raises(KeyError):
        index["nope"]


def test_added_ids_are_found_after_the_tables():
    index = RowIndex(IDS, build_table(IDS)).with_added({"new-1": 1002})
    grown = index.with_added({"new-2": 1003})
    assert grown["new-1"] == 1002 and grown["new-2"] == 1003 and grown["a-5"] == 5
    assert "new-2" not in index and len(grown) == len(IDS) + 2


def test_an_empty_index():
    empty = np.array([], dtype=np.str_)
    index = RowIndex(empty, build_table(empty))
    assert len(index) == 0 and "x" not in index
