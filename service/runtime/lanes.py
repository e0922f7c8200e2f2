"""Lanes: one model loaded N times with one thread each, every batch split across them.

On two cores one ONNX Runtime session with two intra-op threads scales 1.2-1.4x over one
thread at batch 32-64, because most ops of a decode step are too small to split well;
two one-thread sessions running halves of the batch at once scale 1.8-1.9x
(docs/benchmarks.md, "Engine speed in interleaved rounds"). ORT releases the GIL while a
session runs, so plain threads overlap the lanes' model calls; the per-step Python of each
lane (search, logits processing) is what still serialises.

:class:`LaneRuntime` implements the engine's Runtime port over ``N`` loaded runtimes:
whole-batch generation deals the inputs to the lanes (longest first, round robin, so
each lane gets a like mix of lengths) and runs them concurrently; a step-API batch
(:class:`LaneDecodeBatch`) puts each new request in the lane with the fewest rows and steps
every non-empty lane at once. A lane's sessions are only ever used by one thread at a time.
Outputs are the same as one runtime's: a row's result never depends on its batch
neighbours beyond what batching already allows (tested).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from service.runtime.detokenize import IncrementalDetokenizer
from service.runtime.generator import DecodeBatch
from service.runtime.int8_weights import Int8Weights
from service.runtime.manifest import Manifest
from service.runtime.model import GenerationOutput, Seq2SeqRuntime, load_runtime
from service.runtime.model_source import reused_rewrites
from service.runtime.options import GenerationOptions, ResolvedOptions
from service.runtime.positioned import PositionedDecodeBatch, SourceClasses
from service.runtime.search import StepEvent
from service.runtime.sessions import RuntimeInfo, default_intra_op_threads

log = logging.getLogger(__name__)


# A lane's own step-API batch: cohorts (new_batch) or positioned (new_positioned_batch).
LaneBatch = DecodeBatch | PositionedDecodeBatch


def deal(lengths: Sequence[int], lanes: int) -> list[list[int]]:
    """Input indices per lane: longest first, dealt round robin (balanced lengths)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[lane::lanes] for lane in range(lanes)]


class LaneDecodeBatch:
    """A step-API batch spread over the lanes' own batches."""

    def __init__(self, lanes: Sequence[LaneBatch], pool: ThreadPoolExecutor) -> None:
        self._lanes = list(lanes)
        self._pool = pool
        self._owner: dict[Hashable, LaneBatch] = {}

    def __len__(self) -> int:
        return sum(len(lane) for lane in self._lanes)

    @property
    def rows(self) -> int:
        """Decoder rows in use over every lane."""
        return sum(lane.rows for lane in self._lanes)

    def add(self, key: Hashable, input_ids: Sequence[int], options: ResolvedOptions) -> None:
        """Queue a request in the lane with the fewest rows (a lane's ``rows`` counts its
        queued requests too)."""
        lane = min(self._lanes, key=lambda candidate: candidate.rows)
        lane.add(key, input_ids, options)
        self._owner[key] = lane

    def remove(self, key: Hashable) -> bool:
        """Cancel a request wherever it runs."""
        lane = self._owner.pop(key, None)
        return lane.remove(key) if lane is not None else False

    def step(self) -> list[StepEvent]:
        """One step of every non-empty lane, the lanes at once."""
        busy = [lane for lane in self._lanes if len(lane)]
        if len(busy) == 1:
            events = busy[0].step()
        else:
            events = [event for part in self._pool.map(_step, busy) for event in part]
        for event in events:
            if event.finished:
                self._owner.pop(event.key, None)
        return events


def _step(lane: LaneBatch) -> list[StepEvent]:
    return lane.step()


class LaneRuntime:
    """The Runtime port over several one-thread loads of one package."""

    def __init__(self, lanes: Sequence[Seq2SeqRuntime]) -> None:
        if len(lanes) < 2:
            raise ValueError(f"a LaneRuntime needs at least 2 lanes, got {len(lanes)}")
        self._lanes = list(lanes)
        self._first = self._lanes[0]
        self._pool = ThreadPoolExecutor(len(self._lanes), thread_name_prefix="lane")
        self._info = replace(self._first.info, lanes=len(self._lanes))

    @property
    def runtimes(self) -> tuple[Seq2SeqRuntime, ...]:
        """The lanes' runtimes."""
        return tuple(self._lanes)

    @property
    def manifest(self) -> Manifest:
        """The package's manifest."""
        return self._first.manifest

    @property
    def info(self) -> RuntimeInfo:
        """Precision, provider, threads per lane and the number of lanes."""
        return self._info

    @property
    def supports_positioned(self) -> bool:
        """True when every lane loaded the positioned decoder."""
        return all(lane.supports_positioned for lane in self._lanes)

    def encode_texts(
        self,
        texts: Sequence[str],
        source_lang: str | None = None,
        target_lang: str | None = None,
    ) -> list[list[int]]:
        """Token ids per text (the first lane's tokenizer; all lanes share the package)."""
        return self._first.encode_texts(texts, source_lang=source_lang, target_lang=target_lang)

    def resolve(
        self, options: GenerationOptions | None = None, target_lang: str | None = None
    ) -> ResolvedOptions:
        """Request options merged with the package defaults."""
        return self._first.resolve(options, target_lang=target_lang)

    def new_batch(self) -> LaneDecodeBatch:
        """An empty step-API batch over every lane's cohort batch."""
        return LaneDecodeBatch([lane.new_batch() for lane in self._lanes], self._pool)

    def new_positioned_batch(self) -> LaneDecodeBatch:
        """An empty step-API batch over every lane's positioned batch."""
        return LaneDecodeBatch([lane.new_positioned_batch() for lane in self._lanes], self._pool)

    def generate_outputs(
        self,
        input_ids: Sequence[Sequence[int]],
        options: ResolvedOptions | GenerationOptions | None = None,
        batch_size: int | None = None,
    ) -> list[GenerationOutput]:
        """Generate for every input, the inputs dealt to the lanes and run at once
        (``batch_size`` bounds each lane's share)."""
        resolved = options if isinstance(options, ResolvedOptions) else self.resolve(options)
        if len(input_ids) < 2:
            return self._first.generate_outputs(input_ids, resolved, batch_size)
        shares = [s for s in deal([len(ids) for ids in input_ids], len(self._lanes)) if s]

        def run(pair: tuple[Seq2SeqRuntime, list[int]]) -> list[GenerationOutput]:
            lane, indices = pair
            return lane.generate_outputs([input_ids[i] for i in indices], resolved, batch_size)

        results: list[GenerationOutput | None] = [None] * len(input_ids)
        lanes = self._lanes[: len(shares)]
        for indices, outputs in zip(
            shares, self._pool.map(run, zip(lanes, shares, strict=True)), strict=True
        ):
            for index, output in zip(indices, outputs, strict=True):
                results[index] = output
        return [out or GenerationOutput([], []) for out in results]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of generated ids."""
        return self._first.decode(ids)

    def new_detokenizer(self) -> IncrementalDetokenizer:
        """A streaming detokenizer for one sequence."""
        return self._first.new_detokenizer()


def load_lanes(
    package_dir: str | Path,
    lanes: int,
    device: str = "auto",
    precision: str = "auto",
    intra_op_threads: int | None = None,
    verify: bool = False,
    positioned: bool = False,
    int8_weights: Int8Weights = "auto",
    shared_cross_kv: bool = True,
    source_classes: SourceClasses | None = None,
) -> Seq2SeqRuntime | LaneRuntime:
    """Load a package ``lanes`` times (``intra_op_threads`` each, default the usable cores
    divided by ``lanes``) behind one :class:`LaneRuntime`; with ``lanes`` 1, or when the
    package runs on CUDA (one device, one stream: lanes would only contend), the plain
    runtime with all the threads."""
    if lanes < 1:
        raise ValueError(f"lanes must be >= 1, got {lanes}")
    if lanes == 1:
        return load_runtime(
            package_dir,
            device,
            precision,
            intra_op_threads,
            verify,
            positioned=positioned,
            int8_weights=int8_weights,
            shared_cross_kv=shared_cross_kv,
            source_classes=source_classes,
        )
    threads = intra_op_threads or max(1, default_intra_op_threads() // lanes)
    # Every lane loads the same files: each is rewritten once (model_source), not per lane.
    with reused_rewrites():
        first = load_runtime(
            package_dir,
            device,
            precision,
            threads,
            verify,
            positioned=positioned,
            int8_weights=int8_weights,
            shared_cross_kv=shared_cross_kv,
            source_classes=source_classes,
        )
        if first.info.device != "cpu":
            log.warning(
                "%s runs on %s: lanes are for CPU; one runtime",
                first.manifest.name,
                first.info.device,
            )
            return first
        rest = [
            load_runtime(
                package_dir,
                "cpu",
                first.info.precision,
                threads,
                positioned=positioned,
                int8_weights=int8_weights,
                shared_cross_kv=shared_cross_kv,
                source_classes=source_classes,
            )
            for _ in range(lanes - 1)
        ]
    log.info("%s: %d lanes of %d thread(s)", first.manifest.name, lanes, threads)
    return LaneRuntime([first, *rest])
