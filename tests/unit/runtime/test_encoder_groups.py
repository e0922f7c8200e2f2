"""Length-grouped encoding: cheapest split, same encoder output, same generated tokens."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from rt_helpers import TEXTS

from service.runtime import GenerationOptions, Seq2SeqRuntime, load_runtime
from service.runtime.encoder_groups import encode_grouped, length_groups
from service.runtime.sessions import CohortCache, CpuBackend


def _cost(groups: list[list[int]], lengths: list[int], call_cost: int) -> int:
    return sum(len(g) * max(lengths[i] for i in g) + call_cost for g in groups)


def _partitions(items: list[int]) -> Iterator[list[list[int]]]:
    """Every set partition of ``items`` (Bell-number many; small inputs only)."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for partition in _partitions(rest):
        yield [[first], *partition]
        for i in range(len(partition)):
            yield [*partition[:i], [first, *partition[i]], *partition[i + 1 :]]


@pytest.mark.parametrize("seed", range(6))
def test_length_groups_is_the_cheapest_partition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 60, size=6).tolist()
    groups = length_groups(np.array(lengths), call_cost=16)
    rows = sorted(int(i) for g in groups for i in g)
    assert rows == list(range(len(lengths)))  # every row exactly once
    best = min(_cost(p, lengths, 16) for p in _partitions(list(range(len(lengths)))))
    assert _cost([g.tolist() for g in groups], lengths, 16) == best


def test_length_groups_extremes() -> None:
    assert len(length_groups(np.array([7, 7, 7, 7]))) == 1
    assert len(length_groups(np.array([3, 90, 4, 88]), call_cost=10_000)) == 1
    groups = length_groups(np.array([3, 90, 4, 88, 3]), call_cost=0)
    assert sorted(sorted(g.tolist()) for g in groups) == [[0, 4], [1], [2], [3]]


def test_encode_grouped_reassembles_rows_and_zeroes_padding() -> None:
    lengths = [5, 40, 6, 38, 39, 4]
    width = max(lengths)
    ids = np.zeros((len(lengths), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = np.arange(1, n + 1) + 100 * row
        mask[row, :n] = 1
    calls: list[tuple[int, int]] = []

    def fake_encoder(batch_ids: np.ndarray, batch_mask: np.ndarray) -> np.ndarray:
        calls.append(batch_ids.shape)
        # Depends on the row's own tokens only, like a masked encoder.
        hidden = np.stack([batch_ids * 2.0, batch_ids + 0.5], axis=-1)
        return (hidden * batch_mask[..., None]).astype(np.float32)

    grouped = encode_grouped(fake_encoder, ids, mask)
    assert len(calls) > 1 and sum(r * w for r, w in calls) < len(lengths) * width
    once = fake_encoder(ids, mask)
    np.testing.assert_array_equal(grouped, once)


def encode_in_one_call(
    backend: CpuBackend, input_ids: np.ndarray, attention_mask: np.ndarray
) -> CohortCache:
    """What ``CpuBackend.encode`` did before length groups: one call on the padded batch."""
    mask = attention_mask.astype(backend.sig.mask_dtype, copy=False)
    return CohortCache(mask, backend._encode_once(input_ids, attention_mask))


@pytest.fixture(scope="module")
def marian_runtimes(
    tiny_package: Callable[..., Path],
) -> dict[str, tuple[Seq2SeqRuntime, Seq2SeqRuntime]]:
    package = tiny_package("marian")
    out = {}
    for precision in ("fp32", "int8"):
        grouped = load_runtime(package, device="cpu", precision=precision)
        onecall = load_runtime(package, device="cpu", precision=precision)
        onecall.backend.encode = functools.partial(encode_in_one_call, onecall.backend)  # type: ignore[method-assign]
        out[precision] = (grouped, onecall)
    return out


# Very different lengths, so the batch is split into several encoder calls.
MIXED = [*TEXTS, "A dog.", " ".join(TEXTS), "Two men are talking on the street corner."]


@pytest.mark.slow
@pytest.mark.parametrize(("precision", "beams"), list(itertools.product(("fp32", "int8"), (1, 4))))
def test_grouped_encoding_generates_the_same_tokens(
    marian_runtimes: dict[str, tuple[Seq2SeqRuntime, Seq2SeqRuntime]], precision: str, beams: int
) -> None:
    grouped, onecall = marian_runtimes[precision]
    ids = grouped.tokenizer.encode(MIXED)
    assert len(length_groups(np.array([len(r) for r in ids]))) > 1
    opts = grouped.resolve(GenerationOptions(max_new_tokens=24, num_beams=beams))
    assert grouped.generate(ids, opts) == onecall.generate(ids, opts)


@pytest.mark.slow
def test_grouped_encoder_output_matches_one_call_at_real_positions(
    marian_runtimes: dict[str, tuple[Seq2SeqRuntime, Seq2SeqRuntime]],
) -> None:
    grouped, onecall = marian_runtimes["fp32"]
    rows = grouped.tokenizer.encode(MIXED)
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    a = grouped.backend.encode(ids, mask).hidden
    b = onecall.backend.encode(ids, mask).hidden
    real = mask.astype(bool)
    np.testing.assert_allclose(a[real], b[real], rtol=0, atol=1e-5)
    # Rows of the shorter groups were never run at the full width: their tail stays zero.
    assert (a[~real] == 0).all(axis=-1).any()
