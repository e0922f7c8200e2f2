"""service.runtime.shared_cross_kv: a source's beams share one copy of its cross K/V.

The rewrite is checked on a small attention graph built here (same numbers for both
layouts, untouched where it cannot be kept correct) and on a real package: beam search
gives the same tokens with shared and with per-beam copies, also when requests leave
early, and the cohort really holds one cross-attention row per source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from service.runtime import GenerationOptions, load_runtime
from service.runtime.generator import DecodeBatch
from service.runtime.sessions import CohortCache, CpuBackend, source_rows
from service.runtime.shared_cross_kv import MARKER, session_shares_cross_kv, share_cross_kv
from tests.support.attention_graph import HEAD_DIM, HEADS, KEY, SOURCE_LEN, VALUE, attention_model
from tests.support.positioned import SENTENCES, positioned_package


def _session(model: Any) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _inputs(sources: int, beams: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    rows = sources * beams
    mask = np.zeros((rows, 1, 1, SOURCE_LEN), dtype=np.float32)
    mask[::3, ..., -2:] = -1e9  # some rows attend to fewer source tokens
    return {
        "query": rng.standard_normal((rows, HEADS, 1, HEAD_DIM), dtype=np.float32),
        "mask": mask,
        KEY: rng.standard_normal((sources, HEADS, SOURCE_LEN, HEAD_DIM), dtype=np.float32),
        VALUE: rng.standard_normal((sources, HEADS, SOURCE_LEN, HEAD_DIM), dtype=np.float32),
    }


def test_shared_keys_give_what_per_row_copies_give() -> None:
    original = attention_model()
    rewritten = attention_model()
    assert share_cross_kv(rewritten) == 2  # the score and the value MatMul
    shared = _session(rewritten)
    assert session_shares_cross_kv(shared) and not session_shares_cross_kv(_session(original))
    sources, beams = 3, 4
    feed = _inputs(sources, beams)
    copies = dict(feed)
    copies[KEY] = np.repeat(feed[KEY], beams, axis=0)
    copies[VALUE] = np.repeat(feed[VALUE], beams, axis=0)
    expected = _session(original).run(None, copies)
    got = shared.run(None, feed)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-6, atol=1e-6)
    assert int(got[1]) == SOURCE_LEN == int(expected[1])
    # One row per decoder row (no sharing) still runs, and gives the original numbers.
    for before, after in zip(expected, shared.run(None, copies), strict=True):
        np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "model", [attention_model(fold_heads=True), attention_model(read_batch=True)]
)
def test_layouts_it_cannot_keep_correct_are_left_alone(model: Any) -> None:
    before = model.SerializeToString()
    assert share_cross_kv(model) == 0
    assert model.SerializeToString() == before
    assert all(prop.key != MARKER for prop in model.metadata_props)


def test_a_model_is_rewritten_once() -> None:
    model = attention_model()
    assert share_cross_kv(model) == 2
    assert share_cross_kv(model) == 0
    assert sum(node.op_type == "MatMul" for node in model.graph.node) == 2


def test_source_rows_keep_whole_groups_shared_and_split_the_rest() -> None:
    # Beams reordered inside each source, a source dropped: still one row per source.
    sources, share = source_rows(np.array([9, 8, 10, 11, 1, 0, 3, 2]), 4)
    assert (sources.tolist(), share) == ([2, 0], 4)
    # A run that mixes two sources cannot share: one row each.
    sources, share = source_rows(np.array([3, 4, 5, 6]), 4)
    assert (sources.tolist(), share) == ([0, 1, 1, 1], 1)
    # A single row leaving a group (sampling): every row gets its own source row.
    sources, share = source_rows(np.array([0, 1, 2, 4, 5, 6, 7]), 4)
    assert (sources.tolist(), share) == ([0, 0, 0, 1, 1, 1, 1], 1)
    sources, share = source_rows(np.array([2, 0, 1]), 1)
    assert (sources.tolist(), share) == ([2, 0, 1], 1)


def _runtime(package: Path, shared: bool, precision: str = "int8") -> Any:
    return load_runtime(
        package, device="cpu", precision=precision, intra_op_threads=1, shared_cross_kv=shared
    )


@pytest.fixture(scope="module")
def package() -> Path:
    return positioned_package("marian")


def test_beam_search_gives_the_same_tokens_with_shared_cross_kv(package: Path) -> None:
    shared, copies = _runtime(package, True), _runtime(package, False)
    assert isinstance(shared.backend, CpuBackend) and shared.backend.shares_cross_kv
    assert not copies.backend.shares_cross_kv
    ids = shared.encode_texts(SENTENCES)
    for beams, returned in ((4, 1), (3, 2)):
        opts = shared.resolve(
            GenerationOptions(max_new_tokens=24, num_beams=beams, num_return_sequences=returned)
        )
        got = shared.generate(ids, opts)
        assert got == copies.generate(ids, opts)
        assert len({tuple(seqs[0]) for seqs in got}) > 1  # the model reacts to its input


def _cohort_caches(batch: DecodeBatch) -> list[CohortCache]:
    return [cohort.cache for cohort in batch._cohorts]


def _decode(rt: Any, requests: list[tuple[str, list[int], Any]], cancel: str | None) -> Any:
    batch = rt.new_batch()
    for key, ids, opts in requests:
        batch.add(key, ids, opts)
    finished: dict[str, list[list[int]]] = {}
    shares: set[int] = set()
    steps = 0
    while len(batch):
        for event in batch.step():
            if event.finished:
                finished[str(event.key)] = event.sequences
        shares.update(cache.rows_per_source for cache in _cohort_caches(batch))
        steps += 1
        if steps == 3 and cancel is not None:
            assert batch.remove(cancel)
    return finished, shares


def test_requests_leaving_a_shared_cohort_keep_the_others_exact(package: Path) -> None:
    shared, copies = _runtime(package, True), _runtime(package, False)
    ids = shared.encode_texts(SENTENCES)
    beam4 = shared.resolve(GenerationOptions(max_new_tokens=24, num_beams=4))
    requests = [(f"r{i}", row, beam4) for i, row in enumerate(ids)]
    got, shares = _decode(shared, requests, cancel="r2")
    expected, copy_shares = _decode(copies, requests, cancel="r2")
    assert got == expected and "r2" not in got and len(got) == len(SENTENCES) - 1
    assert shares == {4} and copy_shares == {1}


def test_mixed_beam_widths_in_one_cohort_copy_per_row_and_stay_exact(package: Path) -> None:
    shared, copies = _runtime(package, True), _runtime(package, False)
    ids = shared.encode_texts(SENTENCES)
    widths = [shared.resolve(GenerationOptions(max_new_tokens=24, num_beams=b)) for b in (4, 2)]
    requests = [(f"r{i}", row, widths[i % 2]) for i, row in enumerate(ids)]
    got, shares = _decode(shared, requests, cancel=None)
    assert got == _decode(copies, requests, cancel=None)[0]
    assert shares == {1}


def test_samples_leaving_one_by_one_split_the_shared_rows_and_stay_exact(package: Path) -> None:
    # Sampled sequences of one request finish at different steps: the first to leave turns
    # the cohort's cross K/V back into one row per decoder row (sessions.source_rows).
    shared, copies = _runtime(package, True, "fp32"), _runtime(package, False, "fp32")
    ids = shared.encode_texts(SENTENCES)
    opts = shared.resolve(
        GenerationOptions(
            max_new_tokens=24, num_beams=1, do_sample=True, seed=5, num_return_sequences=3
        )
    )
    requests = [(f"r{i}", row, opts) for i, row in enumerate(ids)]
    got, shares = _decode(shared, requests, cancel=None)
    assert got == _decode(copies, requests, cancel=None)[0]
    assert shares == {3, 1}
