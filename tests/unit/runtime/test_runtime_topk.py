"""The search's top-k (block screening for wide rows) and chunked log-softmax against
their plain definitions, ties and -inf included."""

from __future__ import annotations

import numpy as np
import pytest

from service.runtime.logits import log_softmax
from service.runtime.search import _topk_desc


def _reference_topk(values: np.ndarray, k: int) -> np.ndarray:
    index = np.broadcast_to(np.arange(values.shape[1]), values.shape)
    return np.lexsort((index, -values), axis=-1)[:, :k]


@pytest.mark.parametrize("width", [5, 100, 4097, 8001, 58101])
@pytest.mark.parametrize("kind", ["distinct", "ties", "masked", "mostly_masked"])
def test_topk_matches_a_full_sort(width: int, kind: str) -> None:
    rng = np.random.default_rng(width)
    values = rng.normal(size=(6, width)).astype(np.float32)
    if kind == "ties":  # many equal values, so the k-th is tied
        values = np.round(values * 2) / 2
    elif kind == "masked":  # banned tokens
        values[:, rng.integers(0, width, size=width // 2)] = -np.inf
    elif kind == "mostly_masked":  # fewer finite values than blocks would hold
        values[:] = -np.inf
        values[:, [width - 1, 0, width // 2]] = [1.0, 1.0, 0.5]
    for k in (1, 3, 8, 12):
        want = _reference_topk(values, min(k, width))
        assert np.array_equal(_topk_desc(values, k), want), k


def test_log_softmax_is_the_plain_formula() -> None:
    scores = np.random.default_rng(3).normal(size=(11, 3001)).astype(np.float32) * 4
    scores[2, 5] = -np.inf
    shifted = scores - scores.max(axis=1, keepdims=True)
    want = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    got = log_softmax(scores)
    assert got.dtype == np.float32 and np.array_equal(got, want)
    assert log_softmax(scores[:0]).shape == (0, 3001)
