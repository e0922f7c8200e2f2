"""select_rows: the cache row selection of a cohort is array[rows], in place when it can be."""

from __future__ import annotations

import numpy as np
import pytest

from service.runtime.sessions import select_rows


@pytest.mark.parametrize(
    "rows",
    [
        [0, 1, 2, 3, 4, 5],
        [0, 2, 5],
        [3, 4, 5],
        [1],
        [5],
        [],
        [2, 0, 1],
        [0, 0, 3],
        [4, 4, 4, 4],
        [1, 0, 3, 2, 5, 4],
        [5, 5, 0, 0, 1, 1],
        [3, 1, 1],
    ],
)
def test_matches_fancy_indexing(rows: list[int]) -> None:
    source = np.random.default_rng(1).normal(size=(6, 2, 3, 4)).astype(np.float32)
    want = source[np.asarray(rows, dtype=np.int64)]
    got = select_rows(source.copy(), np.asarray(rows, dtype=np.int64))
    assert got.shape == want.shape and np.array_equal(got, want)


def test_dropping_and_reordering_rows_work_in_place() -> None:
    array = np.arange(24, dtype=np.float32).reshape(6, 4)
    dropped = select_rows(array, np.array([0, 2, 5]))
    assert np.shares_memory(dropped, array) and dropped.flags.c_contiguous
    assert dropped[:, 0].tolist() == [0.0, 8.0, 20.0]
    beams = np.arange(24, dtype=np.float32).reshape(6, 4)
    reordered = select_rows(beams, np.array([1, 0, 0, 5, 3, 3]))
    assert np.shares_memory(reordered, beams)
    assert reordered[:, 0].tolist() == [4.0, 0.0, 0.0, 20.0, 12.0, 12.0]


def test_copies_what_it_cannot_write_in_place() -> None:
    strided = np.arange(48, dtype=np.float32).reshape(6, 8)[:, ::2]  # not contiguous
    assert not np.shares_memory(select_rows(strided, np.array([0, 1])), strided)
    frozen = np.arange(24, dtype=np.float32).reshape(6, 4)
    frozen.flags.writeable = False
    assert not np.shares_memory(select_rows(frozen, np.array([1, 0])), frozen)
    small = np.arange(8, dtype=np.float32).reshape(2, 4)
    expanded = select_rows(small, np.array([0, 0, 1, 1]))  # beam expansion: more rows
    assert expanded.shape == (4, 4) and not np.shares_memory(expanded, small)
