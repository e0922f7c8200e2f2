"""Step API: requests joining and leaving a running batch decode exactly as alone."""

from __future__ import annotations

from collections.abc import Callable, Hashable

import pytest
from rt_helpers import TEXTS

from service.runtime import DecodeBatch, GenerationOptions, ResolvedOptions, Seq2SeqRuntime

FAMILIES = ("marian", "bart")
MAX_NEW = 20


def _run(
    batch: DecodeBatch,
    results: dict[Hashable, list[list[int]]],
    steps: int | None = None,
    streamed: dict[Hashable, list[int]] | None = None,
) -> None:
    """Step until empty (or ``steps`` times), collecting finished sequences and streamed ids."""
    done = 0
    while len(batch) and (steps is None or done < steps):
        for event in batch.step():
            if streamed is not None:
                streamed.setdefault(event.key, []).extend(event.token_ids)
            if event.finished:
                assert event.key not in results, "a request finished twice"
                assert event.sequences is not None
                results[event.key] = event.sequences
        done += 1


def _alone(rt: Seq2SeqRuntime, ids: list[int], opts: ResolvedOptions) -> list[list[int]]:
    return rt.generate([ids], opts)[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_join_midway_gives_same_tokens_as_alone(
    family: str, fp32_runtime: Callable[[str], Seq2SeqRuntime]
) -> None:
    rt = fp32_runtime(family)
    ids = rt.encode_texts(TEXTS)
    greedy = rt.resolve(GenerationOptions(max_new_tokens=MAX_NEW, num_beams=1))
    beam = rt.resolve(
        GenerationOptions(max_new_tokens=MAX_NEW, num_beams=4, num_return_sequences=2)
    )
    batch = rt.new_batch()
    results: dict[Hashable, list[list[int]]] = {}
    streamed: dict[Hashable, list[int]] = {}
    batch.add("a", ids[0], greedy)
    batch.add("b", ids[1], beam)
    _run(batch, results, steps=3, streamed=streamed)
    assert batch.rows == 1 + 4 and len(batch) == 2
    batch.add("c", ids[2], greedy)  # joins a batch whose first cohort is 3 tokens in
    batch.add("d", ids[3], beam)
    _run(batch, results, steps=2, streamed=streamed)
    batch.add("e", ids[1], greedy)  # a third cohort
    _run(batch, results, streamed=streamed)
    assert len(batch) == 0 and batch.rows == 0
    assert results["a"] == _alone(rt, ids[0], greedy)
    assert results["b"] == _alone(rt, ids[1], beam)
    assert results["c"] == _alone(rt, ids[2], greedy)
    assert results["d"] == _alone(rt, ids[3], beam)
    assert results["e"] == _alone(rt, ids[1], greedy)
    # Greedy requests stream every token; beam requests only report when finished.
    for key in ("a", "c", "e"):
        assert streamed[key] == results[key][0]
    for key in ("b", "d"):
        assert streamed.get(key, []) == []


def test_remove_frees_rows_and_leaves_others_unchanged(
    fp32_runtime: Callable[[str], Seq2SeqRuntime],
) -> None:
    rt = fp32_runtime("marian")
    ids = rt.encode_texts(TEXTS)
    greedy = rt.resolve(GenerationOptions(max_new_tokens=MAX_NEW, num_beams=1))
    beam = rt.resolve(GenerationOptions(max_new_tokens=MAX_NEW, num_beams=3))
    batch = rt.new_batch()
    results: dict[Hashable, list[list[int]]] = {}
    for key, row, opts in (("a", 0, greedy), ("b", 1, beam), ("c", 2, greedy), ("d", 3, beam)):
        batch.add(key, ids[row], opts)
    assert batch.remove("d")  # still pending: never encoded
    _run(batch, results, steps=2)
    assert batch.rows == 1 + 3 + 1
    assert batch.remove("b")
    assert batch.rows == 2 and len(batch) == 2
    assert not batch.remove("b")
    _run(batch, results, steps=1)
    assert batch.remove("a")
    _run(batch, results)
    assert set(results) == {"c"}
    assert results["c"] == _alone(rt, ids[2], greedy)


def test_sampling_seeded_is_reproducible(fp32_runtime: Callable[[str], Seq2SeqRuntime]) -> None:
    rt = fp32_runtime("marian")
    ids = rt.encode_texts(TEXTS)

    def sample(seed: int, **kw: object) -> list[list[int]]:
        opts = GenerationOptions(
            max_new_tokens=MAX_NEW, num_beams=1, do_sample=True, seed=seed, **kw
        )  # type: ignore[arg-type]
        return _alone(rt, ids[0], rt.resolve(opts))

    first = sample(7, top_k=0, temperature=1.5)
    assert sample(7, top_k=0, temperature=1.5) == first
    # Same seed inside a batch with other requests: the same sequence.
    batch = rt.new_batch()
    results: dict[Hashable, list[list[int]]] = {}
    opts = rt.resolve(
        GenerationOptions(
            max_new_tokens=MAX_NEW, num_beams=1, do_sample=True, seed=7, top_k=0, temperature=1.5
        )
    )
    batch.add("x", ids[0], opts)
    batch.add("y", ids[1], rt.resolve(GenerationOptions(max_new_tokens=MAX_NEW, num_beams=1)))
    batch.add(
        "z",
        ids[2],
        rt.resolve(GenerationOptions(max_new_tokens=MAX_NEW, num_beams=1, do_sample=True, seed=1)),
    )
    _run(batch, results)
    assert results["x"] == first
    # Different seeds explore different sequences.
    outs = {tuple(sample(seed, top_k=0, temperature=1.5)[0]) for seed in range(6)}
    assert len(outs) > 1
    # Several sampled sequences per request.
    many = sample(3, num_return_sequences=3)
    assert len(many) == 3 and many == sample(3, num_return_sequences=3)


def test_beam_sampling_seeded_is_reproducible(
    fp32_runtime: Callable[[str], Seq2SeqRuntime],
) -> None:
    rt = fp32_runtime("marian")
    ids = rt.encode_texts(TEXTS[:2])
    opts = rt.resolve(
        GenerationOptions(
            max_new_tokens=MAX_NEW, num_beams=3, num_return_sequences=2, do_sample=True, seed=11
        )
    )
    first = rt.generate(ids, opts)
    assert rt.generate(ids, opts) == first
    assert all(len(per_input) == 2 for per_input in first)
