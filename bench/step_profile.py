"""Where the time of a step batch goes: positioned (iteration) against batched generate.

Offline, no HTTP: ``--clients`` requests are kept in flight on one runtime, greedy,
natural stopping, WMT14 sentences in order (the built-in sentences without the data).

- ``iteration``: one positioned batch (``Seq2SeqRuntime.new_positioned_batch``); whenever
  a request finishes, the next one joins at the next step (a closed loop of
  ``--clients`` clients).
- ``batched``: ``generate_outputs`` on chunks of ``--clients`` requests (they start
  together and the chunk ends with its longest member: what ``dynamic`` runs).

Each component is timed by wrapping the runtime's own calls (encoder, cross-attention
projection and slot placement, decoder, compaction, row selection); ``other`` is the rest
of the wall time (the search, feeds, Python). Run it on a quiet machine: the two targets
run one after the other, not interleaved, so compare the components within a target and
the two throughputs only as an indication.

    python -m bench.step_profile --package PKG --clients 16 --requests 160
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.inputs import translation_texts
from service.runtime import share_thread_pool
from service.runtime.model import Seq2SeqRuntime, load_runtime
from service.runtime.options import GenerationOptions, ResolvedOptions
from service.runtime.positioned import SourceClasses


class Stopwatch:
    """Seconds per label, summed over every call of the wrapped methods."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)

    def wrap(self, owner: object, method: str, label: str) -> None:
        """Replace ``owner.method`` by a timed call of itself (on this instance only)."""
        inner: Callable[..., object] = getattr(owner, method)

        def timed(*args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started

        setattr(owner, method, timed)


@dataclass
class Profile:
    """One target's run: throughput and seconds per component."""

    target: str
    requests: int
    wall_s: float
    components: dict[str, float]
    steps: int = 0
    mean_slots: float = 0.0
    mean_past: float = 0.0

    @property
    def requests_per_s(self) -> float:
        """Finished requests per second of wall time."""
        return self.requests / self.wall_s if self.wall_s else 0.0


def profile_iteration(
    runtime: Seq2SeqRuntime,
    inputs: Sequence[list[int]],
    options: ResolvedOptions,
    clients: int,
    source_limits: Sequence[int] = (),
) -> Profile:
    """A closed loop of ``clients`` requests on one positioned batch (with the source-width
    classes ``source_limits``)."""
    watch = Stopwatch()
    batch = runtime.new_positioned_batch(SourceClasses(tuple(source_limits)))
    classes = batch.classes
    watch.wrap(runtime.backend, "encode", "encoder")
    watch.wrap(classes[0].decoder, "run", "decoder")  # one session for every class
    for slots in classes:
        watch.wrap(slots, "_admit", "cross K/V + placement")
        watch.wrap(slots, "compact", "compaction")
        watch.wrap(slots, "copy_rows", "beam copies")
    pending = list(enumerate(inputs))
    for key, ids in pending[:clients]:
        batch.add(key, ids, options)
    pending = pending[clients:]
    done = steps = slot_sum = past_sum = 0
    started = time.perf_counter()
    while done < len(inputs):
        events = batch.step()
        steps += 1
        slot_sum += sum(len(slots.slots) for slots in classes)
        past_sum += max(slots.past_len for slots in classes)
        for event in events:
            if event.finished:
                done += 1
                if pending:
                    key, ids = pending.pop(0)
                    batch.add(key, ids, options)
    wall = time.perf_counter() - started
    return Profile(
        "iteration",
        done,
        wall,
        _with_other(dict(watch.seconds), wall),
        steps,
        slot_sum / max(steps, 1),
        past_sum / max(steps, 1),
    )


def profile_batched(
    runtime: Seq2SeqRuntime, inputs: Sequence[list[int]], options: ResolvedOptions, clients: int
) -> Profile:
    """``generate_outputs`` on consecutive chunks of ``clients`` requests."""
    watch = Stopwatch()
    backend = runtime.backend
    watch.wrap(backend, "encode", "encoder")
    watch.wrap(backend, "decode_first", "decoder (first step, cross K/V)")
    watch.wrap(backend, "decode_next", "decoder")
    watch.wrap(backend, "take", "row selection")
    started = time.perf_counter()
    for first in range(0, len(inputs), clients):
        runtime.generate_outputs(inputs[first : first + clients], options)
    wall = time.perf_counter() - started
    return Profile("batched", len(inputs), wall, _with_other(dict(watch.seconds), wall))


def _with_other(components: dict[str, float], wall: float) -> dict[str, float]:
    components["other (search, feeds, Python)"] = max(wall - sum(components.values()), 0.0)
    return components


def markdown(profiles: Sequence[Profile], command: str) -> str:
    """The profiles as a markdown block: throughput, then seconds and share per component."""
    lines = [f"`{command}`", ""]
    for p in profiles:
        extra = (
            f", {p.steps} steps, mean slots {p.mean_slots:.1f}, mean past {p.mean_past:.1f}"
            if p.steps
            else ""
        )
        lines += [
            f"**{p.target}**: {p.requests} requests in {p.wall_s:.1f} s = "
            f"{p.requests_per_s:.2f} requests/s{extra}",
            "",
            "| component | s | share | ms per request |",
            "|---|---|---|---|",
        ]
        for name, seconds in sorted(p.components.items(), key=lambda kv: -kv[1]):
            lines.append(
                f"| {name} | {seconds:.2f} | {100 * seconds / p.wall_s:.0f} % | "
                f"{1000 * seconds / max(p.requests, 1):.1f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Profile both targets on one package and print (and optionally save) the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, required=True, help="exported with --positioned")
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=160)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--no-spin",
        action="store_true",
        help="ORT threads sleep between calls (each session has its own spinning pool)",
    )
    parser.add_argument(
        "--shared-pool",
        action="store_true",
        help="every session on one ORT thread pool (service.runtime.share_thread_pool)",
    )
    parser.add_argument(
        "--source-limits",
        type=lambda text: tuple(int(t) for t in text.split(",") if t.strip()),
        default=(),
        help="iteration's source-width classes, comma-separated (default '': one class, "
        "as the service runs by default; e.g. 64: S2S_ITERATION_SOURCE_SPLIT=64)",
    )
    args = parser.parse_args(argv)
    if args.shared_pool:
        share_thread_pool(args.threads)
    runtime = load_runtime(
        args.package,
        precision=args.precision,
        intra_op_threads=args.threads,
        positioned=True,
        spin=not args.no_spin,
    )
    texts = translation_texts(args.requests, args.data_dir).texts
    inputs = runtime.encode_texts(texts)
    options = runtime.resolve(GenerationOptions(num_beams=1))
    profiles = [
        profile_batched(runtime, inputs, options, args.clients),
        profile_iteration(runtime, inputs, options, args.clients, args.source_limits),
    ]
    command = "python -m bench.step_profile " + " ".join(sys.argv[1:] if argv is None else argv)
    print(markdown(profiles, command.strip()))
    if args.json:
        payload = [{**asdict(p), "requests_per_s": p.requests_per_s} for p in profiles]
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
