"""``python -m export SOURCE --task TASK --name NAME --out-dir DIR [--precision ...]``.

Exports a Hugging Face seq2seq checkpoint (local directory or hub id) into a validated
ONNX model package. Problems with the input or the environment end with one line on
stderr and a non-zero exit; nothing is left half-written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from export.errors import ExportError


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (task/precision are checked by the pipeline)."""
    parser = argparse.ArgumentParser(
        prog="python -m export",
        description="Export a Hugging Face seq2seq checkpoint to a validated ONNX model package.",
    )
    parser.add_argument("source", metavar="SOURCE", help="checkpoint directory or hub model id")
    parser.add_argument(
        "--task", required=True, help="translation, summarization or chat (must fit the model)"
    )
    parser.add_argument("--name", required=True, help="package name (directory under --out-dir)")
    parser.add_argument("--out-dir", required=True, help="where the package directory goes")
    parser.add_argument(
        "--precision",
        default="fp32,int8",
        help="comma-separated variants: fp32 (always built), int8 (CPU), fp16 (CUDA); "
        "default fp32,int8",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing package")
    parser.add_argument(
        "--no-validate",
        action="store_true",
        help="skip parity validation (the package is then marked not validated)",
    )
    parser.add_argument(
        "--positioned",
        action="store_true",
        help="also write the positioned decoder (rows at different steps share one decoder "
        "call; S2S_BATCH_MODE=continuous) for the fp32 and int8 variants",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    started = time.perf_counter()

    def progress(message: str) -> None:
        print(f"{time.perf_counter() - started:7.1f}s {message}", file=sys.stderr, flush=True)

    from export.pipeline import export_package, read_validation

    try:
        package = export_package(
            args.source,
            task=args.task,
            name=args.name,
            out_dir=args.out_dir,
            precisions=args.precision,
            overwrite=args.overwrite,
            validate=not args.no_validate,
            progress=progress,
            positioned=args.positioned,
        )
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; no package written", file=sys.stderr)
        return 130
    results = read_validation(package).get("precisions", {})
    for precision, result in results.items():
        if result.get("validated"):
            print(
                f"{precision}: greedy_exact={result['greedy_exact']:.3f} "
                f"beam_exact={result['beam_exact']:.3f} "
                f"token_agreement={result['greedy_token_agreement']:.3f}"
            )
        else:
            print(f"{precision}: not validated ({result.get('reason', 'skipped')})")
    for precision, result in read_validation(package).get("positioned", {}).items():
        if isinstance(result, dict) and "greedy_exact" in result:
            print(
                f"{precision} positioned: greedy_exact={result['greedy_exact']:.3f} "
                f"beam_exact={result['beam_exact']:.3f}"
            )
    print(f"package written to {package} in {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
