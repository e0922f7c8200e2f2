"""``python -m bench`` (``make bench``): every benchmark, then docs/benchmarks.md.

1. ``engine``: full Marian, every backend, greedy and beam 4, batch 1/8/32/64, fixed length;
2. ``ceiling``: the tokens/s the int8 MatMuls alone allow, beside step 1's rows;
3. ``natural``: full Marian, natural stopping: PyTorch, ours int8, CTranslate2 int8, greedy;
4. ``t5``: full T5 (t5-small dims), translation, greedy, batch 1/8/32, fixed and natural;
5. ``bart``: full BART (distilbart-cnn-12-6 dims), SAMSum summarization, same grid;
6. ``load``: service load sweep on full Marian (continuous, dynamic, naive pipeline), with
   the paired HTTP latency at concurrency 1;
7. ``openloop``: open-loop Poisson arrivals at 25-110 % of capacity on a WMT14 / SAMSum
   mix, natural stopping, streaming (continuous, dynamic);
8. ``gpu``: GPU suite (records "not run" without a GPU);
9. report: tables and plots into docs/benchmarks.md and docs/benchmarks/.

Checkpoints and packages missing from ``.cache/`` are built first (full Marian ~10 min,
T5 ~5 min, BART ~15 min on 2 cores). Arguments
after ``--engine-args`` / ``--load-args`` go to every engine step / the load step (e.g. a
smaller ``--batch-sizes``); ``--skip`` leaves steps out (comma-separated names from the
list above).
"""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from bench import ceiling, engine, gpu, load, openloop, report

NATURAL_BACKENDS = "torch:fp32:1,ours:int8:1,ct2:int8:1"
# T5 and BART: the backends of the ratios, one thread each (the larger BART makes
# PyTorch's batch-32 cells exceed the backend budget; the table says so).
FAMILY_BACKENDS = "torch:fp32:1,ours:fp32:1,ours:int8:1,ct2:int8:1"
# Grids go before --engine-args (a narrower --batch-sizes there wins); each step's model
# and backend flags go after them (so --engine-args cannot turn a T5 step into Marian).
FAMILY_GRID = ("--searches", "greedy", "--stops", "fixed,natural", "--batch-sizes", "1,8,32")
FAMILY_TASKS = {"t5": "translation", "bart": "summarization"}
# BART's SAMSum dialogues take ~25 s per batch-8 pass on PyTorch: a larger budget lets the
# natural-stopping cells run after the fixed-length ones.
FAMILY_BUDGETS = {"t5": "80", "bart": "200"}
# 10 s levels: 5 s ones moved mode comparisons by up to 20 % between runs.
LOAD_DEFAULTS = ("--targets", "continuous,dynamic,naive", "--duration-s", "10")
# Interleaved rounds per engine step (bench.rounds): the main table's lead must hold in each
# of 3; the side tables get 2 (a whole `make bench` stays a few hours on 2 cores). The
# issue-17 comparison with 5 rounds is its own target: `make bench-engine`.
MAIN_ROUNDS = ("--rounds", "3")
SIDE_ROUNDS = ("--rounds", "2")
STEPS = ("engine", "ceiling", "natural", "t5", "bart", "load", "openloop", "gpu")


def engine_documents(out: Path) -> list[Path]:
    """The engine documents in the order the report shows them."""
    names = ("engine", "engine-natural", "engine-t5", "engine-bart")
    return [out / f"{name}.json" for name in names]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the steps in order; each writes its JSON document into ``--out``."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--out", type=Path, default=engine.CACHE)
    p.add_argument("--size", default="full", choices=["tiny", "full"])
    p.add_argument("--doc", type=Path, default=report.DOC)
    p.add_argument("--plots", type=Path, default=report.PLOTS)
    p.add_argument("--engine-args", default="", help="extra bench.engine arguments (quoted)")
    p.add_argument("--load-args", default="", help="extra bench.load arguments (quoted)")
    p.add_argument("--openloop-args", default="", help="extra bench.openloop arguments (quoted)")
    p.add_argument("--skip", default="", help=f"steps to leave out: {','.join(STEPS)}")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    skip = {s for s in args.skip.split(",") if s}
    if skip - set(STEPS):
        p.error(f"unknown steps {sorted(skip - set(STEPS))}; choose from {', '.join(STEPS)}")
    marian = ["--family", "marian", "--size", args.size]
    extra = shlex.split(args.engine_args)
    out = args.out
    main_doc, natural_doc, t5_doc, bart_doc = engine_documents(out)
    if "engine" not in skip:
        engine.main([*MAIN_ROUNDS, *extra, *marian, "--json", str(main_doc)])
    if "ceiling" not in skip and main_doc.is_file():
        ceiling.main(["--engine", str(main_doc), "--json", str(out / "ceiling.json")])
    if "natural" not in skip:
        natural = ["--stops", "natural", "--searches", "greedy", "--backends", NATURAL_BACKENDS]
        engine.main([*SIDE_ROUNDS, *marian, *extra, *natural, "--json", str(natural_doc)])
    for family, document in (("t5", t5_doc), ("bart", bart_doc)):
        if family not in skip:
            model = ["--family", family, "--size", args.size, "--task", FAMILY_TASKS[family]]
            grid = [*SIDE_ROUNDS, *FAMILY_GRID, "--backends", FAMILY_BACKENDS]
            grid += ["--backend-budget-s", FAMILY_BUDGETS[family]]
            engine.main([*grid, *extra, *model, "--json", str(document)])
    if "load" not in skip:
        load_args = shlex.split(args.load_args)
        load.main(["--json", str(out / "load.json"), *marian, *LOAD_DEFAULTS, *load_args])
    if "openloop" not in skip:
        openloop_args = ["--size", args.size, *shlex.split(args.openloop_args)]
        openloop.main(["--json", str(out / "openloop.json"), *openloop_args])
    if "gpu" not in skip:
        gpu.main(["--json", str(out / "gpu.json"), *marian])
    return report.main(
        [
            "--engine",
            *map(str, engine_documents(out)),
            "--load",
            str(out / "load.json"),
            "--openloop",
            str(out / "openloop.json"),
            "--gpu",
            str(out / "gpu.json"),
            "--ceiling",
            str(out / "ceiling.json"),
            "--doc",
            str(args.doc),
            "--plots",
            str(args.plots),
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
