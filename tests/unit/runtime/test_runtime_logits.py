"""Our numpy logits processors give the same scores as transformers' processors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

torch = pytest.importorskip("torch")
lp = pytest.importorskip("transformers.generation.logits_process")

from service.runtime import logits as ours  # noqa: E402
from service.runtime.search import _sample_rows  # noqa: E402

VOCAB = 97
ROWS = 6


def _inputs(seed: int, cur_len: int = 9) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = (rng.standard_normal((ROWS, VOCAB)) * 3).astype(np.float32)
    # Few distinct tokens so that repetitions and n-gram matches actually occur.
    ids = rng.integers(0, 8, size=(ROWS, cur_len)).astype(np.int64)
    return ids, scores


CASES: list[tuple[str, Callable[[], object], Callable[[], ours.LogitsProcessor]]] = [
    (
        "repetition>1",
        lambda: lp.RepetitionPenaltyLogitsProcessor(1.3),
        lambda: ours.RepetitionPenalty(1.3),
    ),
    (
        "repetition<1",
        lambda: lp.RepetitionPenaltyLogitsProcessor(0.7),
        lambda: ours.RepetitionPenalty(0.7),
    ),
    ("no_repeat_2", lambda: lp.NoRepeatNGramLogitsProcessor(2), lambda: ours.NoRepeatNGram(2)),
    ("no_repeat_3", lambda: lp.NoRepeatNGramLogitsProcessor(3), lambda: ours.NoRepeatNGram(3)),
    ("no_repeat_1", lambda: lp.NoRepeatNGramLogitsProcessor(1), lambda: ours.NoRepeatNGram(1)),
    ("temperature", lambda: lp.TemperatureLogitsWarper(0.7), lambda: ours.Temperature(0.7)),
    ("top_k", lambda: lp.TopKLogitsWarper(10), lambda: ours.TopK(10)),
    ("top_k_keep", lambda: lp.TopKLogitsWarper(1, min_tokens_to_keep=2), lambda: ours.TopK(1, 2)),
    ("top_p", lambda: lp.TopPLogitsWarper(0.8), lambda: ours.TopP(0.8)),
    (
        "top_p_small",
        lambda: lp.TopPLogitsWarper(0.05, min_tokens_to_keep=2),
        lambda: ours.TopP(0.05, 2),
    ),
    (
        "bad_words",
        lambda: lp.NoBadWordsLogitsProcessor([[5], [3, 4], [1, 2, 6]], eos_token_id=0),
        lambda: ours.NoBadWords([[5], [3, 4], [1, 2, 6]], VOCAB),
    ),
    ("min_length", lambda: lp.MinLengthLogitsProcessor(12, 0), lambda: ours.MinLength(12, [0])),
    (
        "forced_eos",
        lambda: lp.ForcedEOSTokenLogitsProcessor(10, 0),
        lambda: ours.ForcedEOS(10, [0]),
    ),
    (
        "suppress",
        lambda: lp.SuppressTokensLogitsProcessor([1, 7, 30]),
        lambda: ours.SuppressTokens([1, 7, 30]),
    ),
    (
        "begin_suppress",
        lambda: lp.SuppressTokensAtBeginLogitsProcessor([2, 9], 9),
        lambda: ours.SuppressTokensAtBegin([2, 9], 9),
    ),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("name", "make_hf", "make_ours"), CASES, ids=[c[0] for c in CASES])
def test_processor_matches_transformers(
    name: str, make_hf: Callable[[], object], make_ours: Callable[[], object], seed: int
) -> None:
    ids, scores = _inputs(seed)
    expected = make_hf()(torch.from_numpy(ids), torch.from_numpy(scores.copy())).numpy()  # type: ignore[operator]
    got = make_ours()(ids, scores.copy())  # type: ignore[operator]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    if name not in ("temperature",):
        # Something was actually filtered / changed, so the comparison is meaningful.
        assert not np.array_equal(got, scores), name


def test_forced_bos_only_at_first_position() -> None:
    ids, scores = _inputs(0, cur_len=1)
    expected = lp.ForcedBOSTokenLogitsProcessor(4)(
        torch.from_numpy(ids), torch.from_numpy(scores.copy())
    )
    np.testing.assert_array_equal(ours.ForcedBOS(4)(ids, scores.copy()), expected.numpy())
    ids2, scores2 = _inputs(0, cur_len=2)
    np.testing.assert_array_equal(ours.ForcedBOS(4)(ids2, scores2.copy()), scores2)


def test_chained_warpers_match_transformers() -> None:
    """temperature -> top_k -> top_p, as generate() chains them for sampling."""
    ids, scores = _inputs(5)
    hf = lp.LogitsProcessorList(
        [lp.TemperatureLogitsWarper(0.6), lp.TopKLogitsWarper(20), lp.TopPLogitsWarper(0.9)]
    )
    expected = hf(torch.from_numpy(ids), torch.from_numpy(scores.copy())).numpy()
    got = scores.copy()
    for proc in (ours.Temperature(0.6), ours.TopK(20), ours.TopP(0.9)):
        got = proc(ids, got)
    np.testing.assert_array_equal(got, expected)


def test_log_softmax_close_to_torch() -> None:
    _, scores = _inputs(3)
    expected = torch.log_softmax(torch.from_numpy(scores), dim=-1).numpy()
    np.testing.assert_allclose(ours.log_softmax(scores), expected, rtol=0, atol=2e-6)


def test_sampling_frequencies_follow_filtered_distribution() -> None:
    """Draws come only from tokens the warpers keep, at their softmax frequencies."""
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((1, VOCAB)).astype(np.float32) * 2
    filtered = ours.TopP(0.7)(
        np.zeros((1, 1), np.int64), ours.TopK(8)(np.zeros((1, 1), np.int64), logits.copy())
    )
    probs = np.exp(filtered - filtered.max(), dtype=np.float64)
    probs /= probs.sum()
    draws = 20000
    gens = [np.random.default_rng(1)]
    counts = np.zeros(VOCAB)
    batch = np.repeat(probs, 1, axis=0)
    for _ in range(draws):
        counts[_sample_rows(batch, gens)[0]] += 1
    kept = probs[0] > 0
    assert 1 < kept.sum() <= 8
    assert counts[~kept].sum() == 0
    freq = counts / draws
    # 4.5 standard errors: fails by chance with probability < 1e-4 per token.
    se = np.sqrt(probs[0] * (1 - probs[0]) / draws)
    assert np.all(np.abs(freq - probs[0]) <= 4.5 * se + 1e-12)
