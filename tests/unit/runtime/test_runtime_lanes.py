"""Lanes: a batch split over several one-thread loads gives what one runtime gives."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from rt_helpers import TEXTS

from service.runtime import GenerationOptions, Seq2SeqRuntime
from service.runtime.lanes import LaneDecodeBatch, LaneRuntime, deal, load_lanes
from tests.support.positioned import SENTENCES, positioned_package

MAX_NEW = 20
# Twice the runtime tests' four texts: each of two lanes gets a mixed-length share.
BATCH = TEXTS + list(reversed(TEXTS))


def test_deal_gives_each_lane_longest_first_round_robin() -> None:
    assert deal([5, 1, 9, 3, 7], 2) == [[2, 0, 1], [4, 3]]
    assert deal([2, 2], 3) == [[0], [1], []]
    assert sorted(i for lane in deal(list(range(17)), 4) for i in lane) == list(range(17))


@pytest.fixture(scope="module")
def lanes(tiny_package: Callable[..., Path]) -> LaneRuntime:
    runtime = load_lanes(tiny_package("marian"), 2, device="cpu", precision="fp32")
    assert isinstance(runtime, LaneRuntime)
    return runtime


def test_load_lanes_shares_the_threads_and_says_so(
    tiny_package: Callable[..., Path], lanes: LaneRuntime
) -> None:
    assert (lanes.info.lanes, lanes.info.intra_op_threads, lanes.info.precision) == (2, 1, "fp32")
    single = load_lanes(tiny_package("marian"), 1, device="cpu", precision="fp32")
    assert isinstance(single, Seq2SeqRuntime) and single.info.lanes == 1
    with pytest.raises(ValueError):
        load_lanes(tiny_package("marian"), 0)


@pytest.mark.parametrize("num_beams", [1, 4])
def test_whole_batch_generation_matches_one_runtime(
    num_beams: int, lanes: LaneRuntime, fp32_runtime: Callable[[str], Seq2SeqRuntime]
) -> None:
    one = fp32_runtime("marian")
    ids = one.encode_texts(BATCH)
    options = one.resolve(GenerationOptions(max_new_tokens=MAX_NEW, num_beams=num_beams))
    expected = one.generate_outputs(ids, options)
    got = lanes.generate_outputs(ids, options)
    assert got == expected
    assert len({tuple(out.sequences[0]) for out in got}) >= 3  # input-dependent outputs
    assert lanes.generate_outputs(ids[:1], options) == expected[:1]
    assert lanes.generate_outputs([], options) == []


def _drain(batch: LaneDecodeBatch, results: dict[int, list[list[int]]]) -> None:
    while len(batch):
        for event in batch.step():
            if event.finished and event.sequences is not None:
                key = event.key
                assert isinstance(key, int) and key not in results
                results[key] = event.sequences


def test_step_api_spreads_joiners_and_decodes_them_as_alone(
    lanes: LaneRuntime, fp32_runtime: Callable[[str], Seq2SeqRuntime]
) -> None:
    one = fp32_runtime("marian")
    ids = one.encode_texts(BATCH)
    greedy = one.resolve(GenerationOptions(max_new_tokens=MAX_NEW, num_beams=1))
    beam = one.resolve(GenerationOptions(max_new_tokens=MAX_NEW, num_beams=3))
    batch = lanes.new_batch()
    results: dict[int, list[list[int]]] = {}
    batch.add(0, ids[0], beam)
    batch.add(1, ids[1], greedy)
    batch.step()
    # The beam request's 3 rows are in one lane, the greedy row in the other.
    assert batch.rows == 4 and len(batch) == 2
    batch.add(2, ids[2], greedy)  # joins the lighter lane
    batch.add(3, ids[3], greedy)
    batch.step()
    assert batch.rows == 6
    assert batch.remove(3) and not batch.remove(3) and not batch.remove("missing")
    for key in range(4, len(ids)):
        batch.add(key, ids[key], greedy)
    _drain(batch, results)
    assert sorted(results) == [k for k in range(len(ids)) if k != 3]
    for finished, sequences in results.items():
        options = beam if finished == 0 else greedy
        assert sequences == one.generate([ids[finished]], options)[0], finished


def test_positioned_lanes_decode_as_one_positioned_runtime() -> None:
    package = positioned_package("marian")
    lanes = load_lanes(package, 2, device="cpu", precision="fp32", positioned=True)
    one = load_lanes(package, 1, device="cpu", precision="fp32", positioned=True)
    assert isinstance(lanes, LaneRuntime) and lanes.supports_positioned
    assert isinstance(one, Seq2SeqRuntime)
    ids = one.encode_texts(SENTENCES)
    greedy = one.resolve(GenerationOptions(max_new_tokens=MAX_NEW, num_beams=1))
    batch = lanes.new_positioned_batch()
    results: dict[int, list[list[int]]] = {}
    for key, row in enumerate(ids):
        batch.add(key, row, greedy)
        batch.step()  # each request joins a running batch one step later
    _drain(batch, results)
    assert len(results) == len(ids)
    for finished, sequences in results.items():
        assert sequences == one.generate([ids[finished]], greedy)[0], finished
