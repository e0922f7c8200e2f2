"""The engine-level suite on a GPU: our runtime fp16 (CUDA, IO binding) vs CTranslate2 fp16.

Runs ``bench.engine`` with ``--device cuda`` when this machine has a CUDA device that both
onnxruntime (CUDAExecutionProvider) and CTranslate2 can use; otherwise writes a document
that says why it did not run (``bench.report`` prints that in docs/benchmarks.md).

    python -m bench.gpu --json .cache/bench/gpu.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

GPU_BACKENDS = "torch:fp16,ours:fp16,ct2:fp16,ct2:int8"


def gpu_name() -> str | None:
    """The first GPU's name from ``nvidia-smi`` (None without one)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def missing_requirements() -> list[str]:
    """What this machine lacks for the GPU suite (empty: it can run)."""
    missing = []
    if gpu_name() is None:
        missing.append("no NVIDIA GPU (nvidia-smi found none)")
    try:
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            missing.append("onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)")
    except ImportError:
        missing.append("onnxruntime is not installed")
    try:
        import ctranslate2

        if ctranslate2.get_cuda_device_count() < 1:
            missing.append("CTranslate2 sees no CUDA device")
    except ImportError:
        missing.append("ctranslate2 is not installed")
    return missing


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite on the GPU, or record why it cannot run here."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--size", default="full")
    p.add_argument("--family", default="marian")
    p.add_argument("--backends", default=GPU_BACKENDS)
    p.add_argument("--batch-sizes", default="1,8,32,64")
    args, engine_args = p.parse_known_args(argv)
    missing = missing_requirements()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    if missing:
        document: dict[str, Any] = {
            "kind": "gpu",
            "ran": False,
            "checked": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "reason": "Checked "
            + time.strftime("%Y-%m-%d", time.gmtime())
            + ": "
            + "; ".join(missing)
            + ".",
        }
        args.json.write_text(json.dumps(document, indent=1) + "\n")
        print(document["reason"], file=sys.stderr)
        return 0
    from bench import engine

    rows_path = args.json.with_suffix(".engine.json")
    engine.main(
        [
            "--device",
            "cuda",
            "--family",
            args.family,
            "--size",
            args.size,
            "--variants",
            "fp32,fp16",
            "--backends",
            args.backends,
            "--batch-sizes",
            args.batch_sizes,
            "--reference",
            "torch fp16",
            "--json",
            str(rows_path),
            *engine_args,
        ]
    )
    document = json.loads(rows_path.read_text())
    document.update({"kind": "gpu", "ran": True, "gpu": gpu_name()})
    args.json.write_text(json.dumps(document, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
