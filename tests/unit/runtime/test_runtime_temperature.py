"""A tiny temperature inside the documented range never makes NaN (finding 8: 1e-300
became float32 0, the scores inf, the probabilities NaN: 422 plus a traceback a batch)."""

from __future__ import annotations

import numpy as np
import pytest

from service.runtime.logits import MIN_TEMPERATURE, NEG_INF, Temperature


@pytest.mark.parametrize("temperature", [1e-300, 1e-45, 1e-8, MIN_TEMPERATURE])
def test_tiny_temperatures_sample_like_greedy(temperature: float) -> None:
    scores = np.array([[1.0, 3.5, NEG_INF, -2.0, 3.4]], dtype=np.float32)
    scaled = Temperature(temperature)(np.zeros((1, 1), dtype=np.int64), scores.copy())
    # The sampler's own arithmetic (search.py): exp of the scores minus their maximum.
    probs = np.exp(scaled - scaled.max(axis=1, keepdims=True), dtype=np.float64)
    assert not np.isnan(probs).any()
    assert int(np.argmax(probs)) == 1 and probs[0, 1] == 1.0


def test_ordinary_temperatures_are_unchanged() -> None:
    scores = np.array([[1.0, 2.0]], dtype=np.float32)
    out = Temperature(0.5)(np.zeros((1, 1), dtype=np.int64), scores.copy())
    assert out.tolist() == [[2.0, 4.0]]
