"""Offline decode benchmark: our runtime vs PyTorch vs optimum vs CTranslate2, side by side.

Same checkpoint, same pre-tokenized inputs, same batches and the same decode work for every
backend. Each backend runs in its own worker process (no thread pools shared between
libraries, per-backend peak RSS) over every cell (search x stopping x batch size), in
``--rounds`` interleaved rounds (A B, B A, ...: see ``bench.rounds``); the rows, folded to a
median and min-max per cell, go to ``--json`` for ``bench.report``.

    python -m bench.engine --family marian --size full --json .cache/bench/engine.json
    python -m bench.engine --size tiny --backends ours:int8,ct2:int8:1 --batch-sizes 1,8
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import backends
from bench.backends import Decode, Generate, ModelIds, Spec
from bench.documents import command_line, write_document
from bench.rounds import fold_rounds, round_order
from bench.rss import peak_rss_mb, reset_peak

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "bench"
# One thread each, plus the two-thread comparisons (see docs/benchmarks.md: on a shared
# 2-core machine a second thread loses more to waiting than it gains).
DEFAULT_BACKENDS = (
    "torch:fp32:1,torch:fp32:2,optimum:fp32:1,optimum:int8:1,optimum-t1:int8:2,"
    "ours:fp32:1,ours:int8:1,ours:int8:2,ct2:fp32:1,ct2:int8:1,ct2:int8:2"
)
SEARCHES = {"greedy": 1, "beam4": 4}


@dataclass(frozen=True)
class Cell:
    """One measurement: a search, a stopping rule and a batch size."""

    search: str
    stop: str
    batch_size: int
    texts: int

    def decode(self, max_new_tokens: int) -> Decode:
        """The decode work of this cell."""
        return Decode(max_new_tokens, SEARCHES[self.search], self.stop == "fixed")


@dataclass
class Plan:
    """Everything a worker needs (written as JSON for the worker process)."""

    family: str
    size: str
    task: str
    checkpoint: str
    package: str
    ct2_dir: str
    device: str
    ids: dict[str, int]
    inputs: list[list[int]]
    input_source: str
    cells: list[dict[str, Any]]
    max_new_tokens: int
    repeats: int
    cell_budget_s: float
    backend_budget_s: float


def texts_per_cell(batch_size: int, min_texts: int, batches: int) -> int:
    """Inputs decoded per cell: ``batches`` full batches, at least ``min_texts``."""
    return max(min_texts, batch_size * batches)


def make_cells(
    searches: Sequence[str],
    stops: Sequence[str],
    batch_sizes: Sequence[int],
    min_texts: int,
    batches: int,
    max_beam_batch: int = 1 << 30,
) -> list[Cell]:
    """The cell grid in run order (search, then stopping rule, then batch size); beam
    search only up to ``max_beam_batch`` inputs per batch (each input is num_beams rows)."""
    for search in searches:
        if search not in SEARCHES:
            raise ValueError(f"unknown search {search!r}; choose from {sorted(SEARCHES)}")
    for stop in stops:
        if stop not in ("fixed", "natural"):
            raise ValueError(f"unknown stopping rule {stop!r}; choose fixed or natural")
    return [
        Cell(search, stop, b, texts_per_cell(b, min_texts, batches))
        for search in searches
        for stop in stops
        for b in batch_sizes
        if SEARCHES[search] == 1 or b <= max_beam_batch
    ]


def time_cell(
    generate: Generate,
    inputs: list[list[int]],
    batch_size: int,
    repeats: int,
    budget_s: float,
    max_warmups: int = 4,
    steady: float = 0.05,
) -> dict[str, Any]:
    """Decode ``inputs`` in batches ``repeats`` times, after warm-up to steady state.

    Warm-up calls the first full batch until two calls in a row differ by less than
    ``steady`` (relative) or ``max_warmups`` calls ran: the first calls pay thread pool
    start, lazy allocation and page faults of buffers that later calls reuse. Returns the
    median wall time of a pass, per-batch latencies, the outputs of the last pass, the peak
    RSS and the minor page faults per pass. Stops repeating once ``budget_s`` is spent (at
    least one pass always runs)."""
    batches = [inputs[i : i + batch_size] for i in range(0, len(inputs), batch_size)]
    reset_peak()
    warmups: list[float] = []
    while len(warmups) < max_warmups:
        t0 = time.perf_counter()
        generate(batches[0])
        warmups.append(time.perf_counter() - t0)
        if len(warmups) >= 2 and abs(warmups[-1] - warmups[-2]) <= steady * warmups[-2]:
            break
    faults_before = _minor_faults()
    passes: list[float] = []
    latencies: list[float] = []
    outputs: list[list[int]] = []
    started = time.perf_counter()
    for _ in range(repeats):
        outputs = []
        begin = time.perf_counter()
        for batch in batches:
            t0 = time.perf_counter()
            outputs.extend(generate(batch))
            latencies.append(time.perf_counter() - t0)
        passes.append(time.perf_counter() - begin)
        if time.perf_counter() - started > budget_s:
            break
    seconds = statistics.median(passes)
    tokens = sum(len(o) for o in outputs)
    faults = (_minor_faults() - faults_before) / len(passes)
    return {
        "warmup_calls": len(warmups),
        "minor_faults_per_pass": round(faults),
        "seconds": seconds,
        "passes": len(passes),
        "tokens": tokens,
        "tokens_per_s": tokens / seconds if seconds > 0 else 0.0,
        "latency_ms_p50": statistics.median(latencies) * 1000,
        "latency_ms_max": max(latencies) * 1000,
        "peak_rss_mb": peak_rss_mb(),
        "outputs": outputs,
    }


def _minor_faults() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def build_backend(spec: Spec, plan: Plan, decode: Decode) -> Generate:
    """The backend's generate function for one cell's decode settings."""
    ids = ModelIds(**plan.ids)
    package, checkpoint = Path(plan.package), Path(plan.checkpoint)
    if spec.name == "ours":
        return backends.ours(package, spec, decode, ids, plan.device)
    if spec.name == "torch":
        return backends.torch_backend(checkpoint, spec, decode, ids, plan.device)
    if spec.name == "optimum":
        return backends.optimum_backend(package, spec, decode, ids)
    if spec.name == "optimum-t1":
        return backends.optimum_backend(package, spec, decode, ids, torch_threads=1)
    if spec.name == "ct2":
        return backends.ct2_backend(Path(plan.ct2_dir), checkpoint, spec, decode, ids, plan.device)
    raise ValueError(f"unknown backend {spec.name!r}")


def run_worker(spec: Spec, plan: Plan) -> list[dict[str, Any]]:
    """Run every cell of ``plan`` on one backend (in this process); one row per cell."""
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    cache: dict[Decode, Generate] = {}
    for raw in plan.cells:
        cell = Cell(**raw)
        row: dict[str, Any] = {**_identity(spec, plan), **asdict(cell)}
        if time.perf_counter() - started > plan.backend_budget_s:
            rows.append({**row, "skipped": "backend time budget spent"})
            continue
        decode = cell.decode(plan.max_new_tokens)
        load_start = time.perf_counter()
        # Backends bake the decode settings in: build once per setting (cells of one setting
        # are contiguous), dropping the previous model first so peak RSS holds one model.
        generate = cache.get(decode)
        if generate is None:
            cache.clear()
            gc.collect()
            generate = cache[decode] = build_backend(spec, plan, decode)
        load_s = time.perf_counter() - load_start
        inputs = [plan.inputs[i % len(plan.inputs)] for i in range(cell.texts)]
        result = time_cell(generate, inputs, cell.batch_size, plan.repeats, plan.cell_budget_s)
        source_tokens = sum(len(ids) for ids in inputs)
        rows.append({**row, **result, "load_s": round(load_s, 2), "source_tokens": source_tokens})
        print(_line(rows[-1]), file=sys.stderr, flush=True)
    return rows


def _identity(spec: Spec, plan: Plan) -> dict[str, Any]:
    return {
        "backend": spec.name,
        "precision": spec.precision,
        "threads": spec.threads,
        "label": spec.label,
        "model": f"{plan.family}-{plan.size}",
        "task": plan.task,
        "device": plan.device,
        "max_new_tokens": plan.max_new_tokens,
    }


def _line(row: dict[str, Any]) -> str:
    head = f"  {row['label']:<18} {row['search']:<6} {row['stop']:<7} b{row['batch_size']:<3}"
    if "skipped" in row:
        return f"{head} skipped"
    return (
        f"{head} "
        f"{row['tokens_per_s']:>9.1f} tok/s  p50 {row['latency_ms_p50']:>8.1f} ms  "
        f"rss {row['peak_rss_mb']:>6.0f} MiB"
    )


def agreement(rows: list[dict[str, Any]], reference: str) -> None:
    """Set ``identical_to_ref`` (fraction of outputs equal to the reference backend's outputs
    in the same cell) on every row, and drop the outputs. ``reference``: a label or the
    start of one (``torch fp32`` matches ``torch fp32 t2``); the first match wins."""
    labels = [r["label"] for r in rows if "outputs" in r]
    chosen = next((label for label in labels if label.startswith(reference)), None)
    refs = {
        (r["search"], r["stop"], r["batch_size"]): r["outputs"]
        for r in rows
        if chosen is not None and r.get("label") == chosen and "outputs" in r
    }
    for row in rows:
        outputs = row.pop("outputs", None)
        ref = refs.get((row.get("search"), row.get("stop"), row.get("batch_size")))
        if outputs is None or ref is None:
            row["identical_to_ref"] = None
            continue
        same = sum(a == b for a, b in zip(outputs, ref, strict=True))
        row["identical_to_ref"] = round(same / len(outputs), 4)
        row["reference"] = chosen


def spawn_worker(spec_text: str, plan_path: Path, timeout_s: float) -> list[dict[str, Any]]:
    """Run one backend in a fresh process; its rows (or one error row)."""
    out = plan_path.with_suffix(f".{spec_text.replace(':', '_')}.json")
    command = [
        sys.executable,
        "-m",
        "bench.engine",
        "--worker",
        spec_text,
        "--plan",
        str(plan_path),
        "--worker-out",
        str(out),
    ]
    try:
        proc = subprocess.run(command, timeout=timeout_s, check=False, cwd=REPO)
    except subprocess.TimeoutExpired:
        return [{"label": spec_text, "error": f"worker timed out after {timeout_s:.0f}s"}]
    if proc.returncode != 0 or not out.is_file():
        return [{"label": spec_text, "error": f"worker exit status {proc.returncode}"}]
    rows: list[dict[str, Any]] = json.loads(out.read_text())
    return rows


def resolve_model(
    family: str,
    size: str,
    task: str,
    checkpoint: Path | None = None,
    package: Path | None = None,
    variants: Sequence[str] = ("fp32", "int8"),
    keep_pad_row: bool = False,
    positioned: bool = False,
) -> tuple[Path, Path]:
    """The checkpoint and package every backend runs (built and cached when not given).

    Marian: a copy with a zero pad embedding row (see ``backends.zero_pad_copy``) unless
    ``keep_pad_row``; the package is exported from that copy (``positioned``: with the
    positioned decoder pair that ``S2S_BATCH_MODE=continuous`` needs)."""
    if checkpoint is None:
        from training.checkpoints import ensure_checkpoint

        checkpoint = ensure_checkpoint(family, size, allow_untrained=True)
        probe = json.loads((checkpoint / "recipe.json").read_text()).get("probe", {})
        if not probe.get("input_dependent", True):
            print(
                f"warning: {checkpoint.name} gives one output for every input (recipe.json "
                "probe); fixed-length speed numbers stay valid, natural-stopping ones do not",
                file=sys.stderr,
            )
    checkpoint = Path(checkpoint)
    if family == "marian" and not keep_pad_row:
        pad = json.loads((checkpoint / "config.json").read_text())["pad_token_id"]
        checkpoint = backends.zero_pad_copy(
            checkpoint, CACHE / "checkpoints" / f"{checkpoint.name}-padzero", pad
        )
    if package is None:
        from export.cache import ensure_package

        package = ensure_package(
            checkpoint,
            task=task,
            name=f"{size}-{family}",
            precisions=tuple(variants),
            positioned=positioned,
        )
    return checkpoint, Path(package)


def ct2_model_dir(checkpoint: Path) -> Path:
    """Where ``checkpoint``'s CTranslate2 conversion is cached (``backends.ct2_convert``)."""
    return CACHE / "ct2" / checkpoint.name


def prepare(args: argparse.Namespace) -> Plan:
    """Build (or reuse) checkpoint, package and CTranslate2 conversion; tokenize inputs."""
    from bench.inputs import texts_for_task

    checkpoint, package = resolve_model(
        args.family,
        args.size,
        args.task,
        args.checkpoint,
        args.package,
        args.variants.split(","),
        args.keep_pad_row,
    )
    from service.runtime import RuntimeInputError, load_runtime

    probe = load_runtime(package, device="cpu", precision="fp32", intra_op_threads=1)
    model = probe.manifest.model
    ids = {"pad": model.pad_token_id, "eos": model.eos_token_id}
    ids["decoder_start"] = model.decoder_start_token_id
    ct2_dir = ct2_model_dir(checkpoint)
    if any(s.startswith("ct2") for s in args.backends.split(",")):
        backends.ct2_convert(checkpoint, ct2_dir)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    cells = make_cells(
        args.searches.split(","),
        args.stops.split(","),
        batch_sizes,
        args.min_texts,
        args.batches,
        args.max_beam_batch,
    )
    needed = max(c.texts for c in cells)
    texts = texts_for_task(args.task, needed * 2)
    inputs: list[list[int]] = []
    for text in texts.texts:
        try:
            inputs += probe.encode_texts([text])
        except RuntimeInputError:  # longer than the model's positions: not benchmarkable
            continue
        if len(inputs) == needed:
            break
    return Plan(
        family=args.family,
        size=args.size,
        task=args.task,
        checkpoint=str(checkpoint),
        package=str(package),
        ct2_dir=str(ct2_dir),
        device=args.device,
        ids=ids,
        inputs=inputs,
        input_source=texts.source,
        cells=[asdict(c) for c in cells],
        max_new_tokens=args.max_new_tokens,
        repeats=args.repeats,
        cell_budget_s=args.cell_budget_s,
        backend_budget_s=args.backend_budget_s,
    )


def machine() -> dict[str, Any]:
    """A description of the machine and the load on it while the benchmark ran."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "flags": cpu_flags(),
        "governor": _read_first("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
    }


SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8")


def cpu_flags() -> list[str]:
    """The SIMD flags of /proc/cpuinfo that decide which int8 / fp32 kernels run."""
    for line in _read_lines("/proc/cpuinfo"):
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return [f for f in SIMD_FLAGS if f in present]
    return []


def machine_state() -> dict[str, Any]:
    """What can change between rounds: load, the cores' current frequency (when the VM
    shows one) and the memory available."""
    mhz = [
        float(line.split(":", 1)[1])
        for line in _read_lines("/proc/cpuinfo")
        if line.startswith("cpu MHz")
    ]
    available = next(
        (line.split()[1] for line in _read_lines("/proc/meminfo") if line.startswith("MemAvail")),
        None,
    )
    return {
        "time": time.strftime("%H:%M:%S", time.gmtime()),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cpu_mhz": [round(m) for m in mhz],
        "mem_available_mb": None if available is None else int(available) // 1024,
    }


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def _read_first(path: str) -> str | None:
    lines = _read_lines(path)
    return lines[0].strip() if lines else None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add = p.add_argument
    add("--family", default="marian")
    add("--size", default="full", choices=["tiny", "full"])
    add("--task", default="translation", choices=["translation", "summarization"])
    add("--checkpoint", type=Path, help="checkpoint dir (default: built locally)")
    add("--package", type=Path, help="package dir (default: exported locally)")
    add("--variants", default="fp32,int8", help="package variants to export if missing")
    add("--keep-pad-row", action="store_true", help="Marian: do not zero the pad embedding")
    add("--device", default="cpu", choices=["cpu", "cuda"])
    add("--backends", default=DEFAULT_BACKENDS, help="NAME:PRECISION[:THREADS],...")
    add("--searches", default="greedy,beam4")
    add("--stops", default="fixed", help="fixed (min = max new tokens) and/or natural")
    add("--batch-sizes", default="1,8,32,64")
    add("--max-beam-batch", type=int, default=32, help="largest batch for beam search")
    add("--min-texts", type=int, default=8, help="inputs per cell at least")
    add("--batches", type=int, default=1, help="full batches per cell at least")
    add("--max-new-tokens", type=int, default=32)
    add("--repeats", type=int, default=2)
    add("--rounds", type=int, default=5, help="interleaved rounds (A B, B A, ...) of backends")
    add("--cell-budget-s", type=float, default=20.0, help="stop repeating a cell after this")
    add("--backend-budget-s", type=float, default=80.0, help="skip a backend's later cells")
    add("--worker-timeout-s", type=float, default=420.0)
    add("--reference", default="torch fp32", help="(start of the) label compared with")
    add("--json", type=Path, help="write the result document here")
    add("--worker", help=argparse.SUPPRESS)
    add("--plan", type=Path, help=argparse.SUPPRESS)
    add("--worker-out", type=Path, help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Prepare once, run each backend in its own process, write the rows."""
    args = _parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    threads = len(os.sched_getaffinity(0))
    if args.worker:
        plan = Plan(**json.loads(args.plan.read_text()))
        backend = Spec.parse(args.worker, threads)
        if backend.name == "ours" and plan.device != "cuda":
            # The service's layout: every session on one pool (process-wide, and this
            # worker process runs this backend alone).
            from service.runtime import share_thread_pool

            share_thread_pool(backend.threads)
        args.worker_out.write_text(json.dumps(run_worker(backend, plan)))
        return 0
    specs = [s.strip() for s in args.backends.split(",") if s.strip()]
    for spec in specs:
        Spec.parse(spec, threads)  # fail before the expensive preparation
    plan = prepare(args)
    CACHE.mkdir(parents=True, exist_ok=True)
    started = time.time()
    rows: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="plan-", dir=CACHE) as tmp:
        plan_path = Path(tmp) / "plan.json"
        plan_path.write_text(json.dumps(asdict(plan)))
        print(
            f"{plan.family}-{plan.size} {plan.task}: {len(plan.cells)} cells, "
            f"inputs from {plan.input_source}",
            file=sys.stderr,
        )
        for index in range(args.rounds):
            state = machine_state()
            states.append(state)
            print(f"round {index + 1}/{args.rounds} ({state}):", file=sys.stderr, flush=True)
            for spec in round_order(specs, index):
                print(f"{spec}:", file=sys.stderr, flush=True)
                rows += [
                    {**row, "round": index}
                    for row in spawn_worker(spec, plan_path, args.worker_timeout_s)
                ]
    rows = fold_rounds(rows)
    agreement(rows, args.reference)
    document = {
        "kind": "engine",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1),
        "machine": machine(),
        "model": f"{plan.family}-{plan.size}",
        "task": plan.task,
        "input_source": plan.input_source,
        "package": plan.package,
        "checkpoint": plan.checkpoint,
        "max_new_tokens": plan.max_new_tokens,
        "repeats": plan.repeats,
        "rounds": args.rounds,
        "round_states": states,
        "command": command_line("bench.engine", argv),
        "rows": rows,
    }
    write_document(args.json, document)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
