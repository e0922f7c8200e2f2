"""The runtime's positioned step API (``Seq2SeqRuntime.new_positioned_batch``): requests
join a running batch at any step, all rows of a step share one decoder call, and each
request's output is the one it gets decoded alone by ``generate`` (the merged decoder),
for greedy with per-request options, seeded sampling, beam search, cancellation, fp32 and
int8.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import pytest

from service.runtime import (
    GenerationOptions,
    PackageError,
    ResolvedOptions,
    RuntimeInputError,
    Seq2SeqRuntime,
    load_runtime,
)
from service.runtime.positioned import PositionedDecodeBatch
from tests.support.positioned import SENTENCES, positioned_package

TEXTS = SENTENCES


@pytest.fixture(scope="module", params=["fp32", "int8"])
def runtime(request: pytest.FixtureRequest) -> Seq2SeqRuntime:
    return load_runtime(
        positioned_package("marian"),
        device="cpu",
        precision=request.param,
        intra_op_threads=1,
        positioned=True,
    )


def _greedy(
    rt: Seq2SeqRuntime, max_new_tokens: int, no_repeat_ngram_size: int = 0, min_length: int = 0
) -> ResolvedOptions:
    return rt.resolve(
        GenerationOptions(
            num_beams=1,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            no_repeat_ngram_size=no_repeat_ngram_size,
            min_length=min_length,
        )
    )


def _run(
    rt: Seq2SeqRuntime,
    plan: Sequence[tuple[int, Hashable, list[int], ResolvedOptions]],
    remove: dict[int, Hashable] | None = None,
    batch: PositionedDecodeBatch | None = None,
) -> tuple[dict[Hashable, list[list[int]]], dict[Hashable, list[int]], int]:
    """Run ``plan`` (join step, key, ids, options) in one positioned batch (``batch``, or
    a new one); ``remove``: step -> key cancelled before that step. Returns finished
    sequences, streamed tokens and the number of steps."""
    batch = batch if batch is not None else rt.new_positioned_batch()
    todo = sorted(plan, key=lambda p: p[0])
    done: dict[Hashable, list[list[int]]] = {}
    streamed: dict[Hashable, list[int]] = {}
    step = 0
    while todo or len(batch):
        while todo and todo[0][0] <= step:
            _, key, ids, options = todo.pop(0)
            batch.add(key, ids, options)
        if remove and step in remove:
            assert batch.remove(remove[step])
        for event in batch.step():
            streamed.setdefault(event.key, []).extend(event.token_ids)
            if event.finished:
                assert event.sequences is not None and event.finish_reasons is not None
                done[event.key] = event.sequences
        step += 1
        assert step < 500
    return done, streamed, step


def _alone(rt: Seq2SeqRuntime, ids: list[int], options: ResolvedOptions) -> list[list[int]]:
    return rt.generate_outputs([ids], options)[0].sequences


def test_joiners_at_different_steps_match_single_request_decoding(
    runtime: Seq2SeqRuntime,
) -> None:
    """Greedy requests with their own budgets join at steps 0..10: each gets its alone
    output, streamed token by token, and each step costs one positioned decoder call."""
    ids = runtime.encode_texts(TEXTS)
    options = [_greedy(runtime, max_new_tokens=n) for n in (30, 30, 3, 30, 12, 30)]
    plan = [(2 * i, i, ids[i], options[i]) for i in range(len(TEXTS))]
    done, streamed, _ = _run(runtime, plan)
    for i in range(len(TEXTS)):
        expected = _alone(runtime, ids[i], options[i])
        assert done[i] == expected, i
        assert streamed[i] == expected[0]
    assert len(done[2][0]) == 3  # the budget stop


def test_joiners_past_the_holes_fill_the_cross_buffers_spare_room(
    runtime: Seq2SeqRuntime,
) -> None:
    """Joiners beyond the holes go into the cross buffers' room (grown by half when full)
    instead of a copy of the whole cross cache, and still get their alone outputs."""
    ids = runtime.encode_texts(TEXTS)
    options = _greedy(runtime, max_new_tokens=30, min_length=12)  # no row ends early
    batch = runtime.new_positioned_batch()
    slots = batch.slots
    for key in range(4):
        batch.add(key, ids[key], options)
    batch.step()
    assert slots.cross_capacity == 4
    batch.add(4, ids[4], options)
    batch.step()
    assert slots.cross_capacity == 6  # full: grown to 1.5 x 4, one copy
    grown = slots.cross[0].base
    batch.add(5, ids[5], options)
    batch.step()
    assert len(slots.slots) == 6 and slots.cross[0].base is grown  # written in place
    done, _, _ = _run(runtime, [], batch=batch)
    for key in range(6):
        assert done[key] == _alone(runtime, ids[key], options), key


def test_one_decoder_call_per_step_and_rows_at_different_positions(
    runtime: Seq2SeqRuntime,
) -> None:
    ids = runtime.encode_texts(TEXTS[:4])
    batch = runtime.new_positioned_batch()
    options = _greedy(runtime, max_new_tokens=30)
    mixed = 0
    for step in range(6):
        if step < 4:
            batch.add(step, ids[step], options)
        batch.step()
        mixed += len(set(batch.slots.positions)) > 1
    assert batch.slots.calls == 6
    assert mixed >= 3
    assert batch.rows == len(batch) <= 4


def test_per_request_processors_and_seeded_sampling(runtime: Seq2SeqRuntime) -> None:
    """Options differ per request (no_repeat_ngram, min_length, repetition penalty, seeded
    sampling): each request keeps its own processors and random generator."""
    ids = runtime.encode_texts(TEXTS)
    options = [
        _greedy(runtime, max_new_tokens=20, no_repeat_ngram_size=2),
        _greedy(runtime, max_new_tokens=20, min_length=15),
        runtime.resolve(GenerationOptions(num_beams=1, max_new_tokens=20, repetition_penalty=1.5)),
        runtime.resolve(GenerationOptions(num_beams=1, do_sample=True, seed=7, max_new_tokens=20)),
        runtime.resolve(
            GenerationOptions(num_beams=1, do_sample=True, seed=8, top_k=5, max_new_tokens=20)
        ),
    ]
    plan = [(3 * i, i, ids[i], o) for i, o in enumerate(options)]
    done, _, _ = _run(runtime, plan)
    for i, opts in enumerate(options):
        assert done[i] == _alone(runtime, ids[i], opts), i


def test_beam_search_and_several_samples_join_at_different_steps(
    runtime: Seq2SeqRuntime,
) -> None:
    """Beam requests (their beams reorder their own slots each step) and a request with
    two samples share the one decoder call per step with greedy rows, joining at
    different steps; each equals its output alone; one of them is cancelled midway."""
    ids = runtime.encode_texts(TEXTS)
    beam3 = runtime.resolve(GenerationOptions(num_beams=3, max_new_tokens=20))
    beam4 = runtime.resolve(
        GenerationOptions(
            num_beams=4, num_return_sequences=2, early_stopping=True, max_new_tokens=24
        )
    )
    beam_penalty = runtime.resolve(
        GenerationOptions(num_beams=2, length_penalty=0.5, no_repeat_ngram_size=2)
    )
    several = runtime.resolve(
        GenerationOptions(
            num_beams=1, do_sample=True, seed=3, num_return_sequences=2, max_new_tokens=10
        )
    )
    greedy = _greedy(runtime, max_new_tokens=20)
    plan = [
        (0, "g", ids[0], greedy),
        (1, "b3", ids[1], beam3),
        (4, "s", ids[2], several),
        (6, "b4", ids[3], beam4),
        (7, "bp", ids[4], beam_penalty),
        (8, "gone", ids[5], beam3),
    ]
    done, _, _ = _run(runtime, plan, remove={12: "gone"})
    assert set(done) == {"g", "b3", "s", "b4", "bp"}
    for _, key, input_ids, options in plan[:-1]:
        assert done[key] == _alone(runtime, input_ids, options), key
    assert len(done["s"]) == 2 and len(done["b4"]) == 2


def test_one_call_per_step_with_beams_in_the_batch(runtime: Seq2SeqRuntime) -> None:
    ids = runtime.encode_texts(TEXTS[:3])
    batch = runtime.new_positioned_batch()
    batch.add("b", ids[0], runtime.resolve(GenerationOptions(num_beams=4, max_new_tokens=8)))
    batch.add("g", ids[1], _greedy(runtime, max_new_tokens=8))
    assert batch.rows == 5
    steps = 0
    while len(batch):
        batch.step()
        steps += 1
    assert batch.slots.calls == steps


def test_remove_joining_and_running_requests(runtime: Seq2SeqRuntime) -> None:
    """A cancelled request leaves at once (its slot becomes a hole the next joiner fills);
    the others are unaffected; removing an unknown key is False."""
    ids = runtime.encode_texts(TEXTS)
    options = _greedy(runtime, max_new_tokens=30)
    plan = [(i, i, ids[i], options) for i in range(len(TEXTS))]
    done, _, _ = _run(runtime, plan, remove={3: 1, 5: 5})  # 1 running, 5 still joining
    assert set(done) == {0, 2, 3, 4}
    for i in (0, 2, 3, 4):
        assert done[i] == _alone(runtime, ids[i], options), i
    batch = runtime.new_positioned_batch()
    assert not batch.remove("nope")


def test_bad_inputs_are_runtime_input_errors(runtime: Seq2SeqRuntime) -> None:
    batch = runtime.new_positioned_batch()
    options = _greedy(runtime, max_new_tokens=5)
    with pytest.raises(RuntimeInputError):
        batch.add("empty", [], options)
    with pytest.raises(RuntimeInputError):
        batch.add("oov", [runtime.manifest.model.vocab_size + 5], options)
    batch.add("ok", runtime.encode_texts(TEXTS[:1])[0], options)
    with pytest.raises(ValueError):
        batch.add("ok", [5], options)
    assert len(batch) == 1


@pytest.mark.parametrize("family", ["t5", "m2m100"])
def test_other_families_relative_positions_and_forced_bos(family: str) -> None:
    """T5 (relative positions, no position input) and M2M100 (forced target-language BOS,
    source language token) through the same API."""
    rt = load_runtime(positioned_package(family), device="cpu", precision="fp32", positioned=True)
    lang = {"m2m100": ("en", "de")}.get(family, (None, None))
    ids = rt.encode_texts(TEXTS[:4], source_lang=lang[0], target_lang=lang[1])
    options = rt.resolve(
        GenerationOptions(num_beams=1, do_sample=False, max_new_tokens=24), target_lang=lang[1]
    )
    done, _, _ = _run(rt, [(3 * i, i, ids[i], options) for i in range(4)])
    for i in range(4):
        assert done[i] == _alone(rt, ids[i], options), i


def test_not_loaded_without_the_flag_or_the_graphs(copy_summarizer: Path) -> None:
    """Without ``positioned=True``, or for a package without the graphs (shipped like the
    committed ones: ``copy_summarizer``), the runtime has no positioned batch; with it,
    ``verify`` checks the graphs too."""
    package = positioned_package("marian")
    rt = load_runtime(package, device="cpu", precision="fp32")
    assert not rt.supports_positioned
    with pytest.raises(PackageError, match="no positioned decoder"):
        rt.new_positioned_batch()
    assert load_runtime(package, precision="int8", positioned=True, verify=True).supports_positioned
    shipped = load_runtime(copy_summarizer, device="cpu", positioned=True)
    assert not shipped.supports_positioned


@pytest.mark.parametrize(
    "policy",
    [
        {"compact_holes": 0.0, "trim_columns": 0},  # compact at every leave
        {"compact_holes": 1.0, "trim_columns": 10**9},  # holes only, refilled by joiners
    ],
    ids=["copy", "holes"],
)
@pytest.mark.parametrize("seed", [1, 2])
def test_random_schedules_with_mixed_searches_under_each_cache_policy(
    runtime: Seq2SeqRuntime, policy: dict[str, float], seed: int
) -> None:
    """Seeded schedules of greedy, beam and sampled requests joining at random steps, some
    cancelled, under both compaction policies (slots move while beams copy rows)."""
    rng = random.Random(seed)
    ids = runtime.encode_texts(TEXTS)
    choices = [
        _greedy(runtime, max_new_tokens=16),
        runtime.resolve(GenerationOptions(num_beams=2, max_new_tokens=16)),
        runtime.resolve(GenerationOptions(num_beams=3, num_return_sequences=2, max_new_tokens=12)),
        runtime.resolve(GenerationOptions(num_beams=1, do_sample=True, seed=5, max_new_tokens=9)),
    ]
    plan = []
    for n in range(10):
        index = rng.randrange(len(TEXTS))
        plan.append((rng.randrange(0, 25), n, ids[index], rng.choice(choices)))
    batch = runtime.new_positioned_batch()
    for name, value in policy.items():
        setattr(batch.slots, name, value)
    cancel = {plan[k][0] + 2: plan[k][1] for k in rng.sample(range(10), 3)}  # mid-decode
    todo = sorted(plan, key=lambda p: p[0])
    done: dict[Hashable, list[list[int]]] = {}
    removed: set[Hashable] = set()
    step = 0
    while todo or len(batch):
        while todo and todo[0][0] <= step:
            _, key, input_ids, options = todo.pop(0)
            batch.add(key, input_ids, options)
        if step in cancel and batch.remove(cancel[step]):
            removed.add(cancel[step])
        for event in batch.step():
            if event.finished:
                assert event.sequences is not None
                done[event.key] = event.sequences
        step += 1
        assert step < 500
    assert set(done) | removed == set(range(10)) and not set(done) & removed
    assert removed
    for _, key, input_ids, options in plan:
        if key in done:
            assert done[key] == _alone(runtime, input_ids, options), key


def test_fewer_decoder_calls_than_cohorts_for_staggered_arrivals(
    runtime: Seq2SeqRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twelve requests joining one every two steps: the positioned batch makes one decoder
    call per step, the cohort batch one per cohort per step (the issue's collapse); the
    outputs are the same."""
    ids = runtime.encode_texts(TEXTS * 2)
    options = _greedy(runtime, max_new_tokens=30)
    plan = [(2 * i, i, ids[i], options) for i in range(len(ids))]
    positioned, _, steps = _run(runtime, plan)

    cohort_calls = 0
    backend = runtime.backend
    real_next, real_first = backend.decode_next, backend.decode_first

    def counted_next(*args: Any) -> Any:
        nonlocal cohort_calls
        cohort_calls += 1
        return real_next(*args)

    def counted_first(*args: Any) -> Any:
        nonlocal cohort_calls
        cohort_calls += 1
        return real_first(*args)

    batch = runtime.new_batch()
    monkeypatch.setattr(backend, "decode_next", counted_next)
    monkeypatch.setattr(backend, "decode_first", counted_first)
    todo = list(plan)
    cohort: dict[Hashable, list[list[int]]] = {}
    step = 0
    while todo or len(batch):
        while todo and todo[0][0] <= step:
            _, key, input_ids, opts = todo.pop(0)
            batch.add(key, input_ids, opts)
        for event in batch.step():
            if event.finished and event.sequences is not None:
                cohort[event.key] = event.sequences
        step += 1
    assert cohort == positioned
    assert cohort_calls > 2 * steps  # several cohorts side by side (measured: 166 vs 39)
