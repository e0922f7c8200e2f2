"""``python -m bench`` (``make bench``): every benchmark, then docs/benchmarks.md.

1. engine suite, fixed output length: all backends, greedy and beam 4, batch 1/8/32/64;
2. engine suite, natural stopping: PyTorch, ours int8, CTranslate2 int8, greedy;
3. experiment: ours int8 with an int8 output projection (``bench.lm_head_int8``), greedy;
4. service load sweep (continuous, joining every 2 / 4 steps, dynamic, off, naive pipeline);
5. GPU suite (records "not run" without a GPU);
6. report: tables and plots into docs/benchmarks.md and docs/benchmarks/.

Arguments after ``--engine-args`` / ``--load-args`` go to those steps (e.g. a smaller
``--batch-sizes``); ``--skip`` leaves steps out (comma-separated: engine,natural,lmhead,load,gpu).
"""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from bench import engine, gpu, lm_head_int8, load, report

NATURAL_BACKENDS = "torch:fp32:1,ours:int8:1,ct2:int8:1"
# The join variants measure S2S_JOIN_EVERY_STEPS beside plain continuous batching; 10 s
# levels because 5 s ones moved the join comparison by up to 20 % between runs.
LOAD_DEFAULTS = (
    "--targets",
    "continuous,continuous-join2,continuous-join4,dynamic,off,naive",
    "--duration-s",
    "10",
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the steps in order; each writes its JSON document into ``--out``."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--out", type=Path, default=engine.CACHE)
    p.add_argument("--family", default="marian")
    p.add_argument("--size", default="full", choices=["tiny", "full"])
    p.add_argument("--doc", type=Path, default=report.DOC)
    p.add_argument("--plots", type=Path, default=report.PLOTS)
    p.add_argument("--engine-args", default="", help="extra bench.engine arguments (quoted)")
    p.add_argument("--load-args", default="", help="extra bench.load arguments (quoted)")
    p.add_argument("--skip", default="", help="steps to leave out: engine,natural,lmhead,load,gpu")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    skip = set(args.skip.split(","))
    model = ["--family", args.family, "--size", args.size]
    extra = [*model, *shlex.split(args.engine_args)]
    out = args.out
    if "engine" not in skip:
        engine.main(["--json", str(out / "engine.json"), *extra])
    if "natural" not in skip:
        engine.main(
            [
                *extra,
                "--stops",
                "natural",
                "--searches",
                "greedy",
                "--backends",
                NATURAL_BACKENDS,
                "--json",
                str(out / "engine-natural.json"),
            ]
        )
    if "lmhead" not in skip:
        _, package = engine.resolve_model(args.family, args.size, "translation")
        lm_head_int8.main(["--package", str(package), "--out", str(out / "exp-lmhead-int8")])
        engine.main(
            [
                *extra,
                "--package",
                str(out / "exp-lmhead-int8" / package.name),
                "--searches",
                "greedy",
                "--backends",
                "ours:int8:1,ct2:int8:1,ct2:int8:2",
                "--reference",
                "ct2",
                "--json",
                str(out / "engine-lmhead.json"),
            ]
        )
    if "load" not in skip:
        load.main(
            ["--json", str(out / "load.json"), *model, *LOAD_DEFAULTS, *shlex.split(args.load_args)]
        )
    if "gpu" not in skip:
        gpu.main(["--json", str(out / "gpu.json"), *model])
    return report.main(
        [
            "--engine",
            str(out / "engine.json"),
            str(out / "engine-natural.json"),
            str(out / "engine-lmhead.json"),
            "--load",
            str(out / "load.json"),
            "--gpu",
            str(out / "gpu.json"),
            "--doc",
            str(args.doc),
            "--plots",
            str(args.plots),
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
