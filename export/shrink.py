"""``python -m export.shrink PACKAGE``: per-row int8 token embeddings in an exported package.

Packages exported before ``export.int8_embeddings`` kept their int8 variant's token
embedding tables in fp32 (and a tied ``lm_head`` a second time, as int8). This rewrites
the int8 ONNX files of an existing package in place, without its checkpoint:

1. the package's files are checked against its manifest (sizes, sha256);
2. a copy is rewritten (:func:`export.int8_embeddings.quantize_embeddings` on each int8
   file: encoder, merged decoder and, when present, the positioned pair);
3. the copy's outputs are compared with the package's own on its validation inputs
   (greedy and beam search, the runtime the service uses; the positioned pair's too, rows
   joining a running batch as the export checks them). Below ``min_agreement`` (token
   agreement, greedy or beam) nothing is changed and the command fails;
4. the rewritten files replace the package's, the manifest gets their sizes, sha256 and
   quantization label, and ``validation.json`` records the comparison under
   ``precisions.int8.embeddings`` (and ``positioned.int8.embeddings``).

The transformers parity recorded at export time was measured before the rewrite; where
the rewritten package's outputs equal the original's token for token (``exact`` 1.0) it
still holds. A package whose tables are already int8 is left as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export.errors import ExportError, UsageError, ValidationFailedError
from export.int8_embeddings import EmbeddingReport, quantize_embeddings_file
from export.quantize import EMBEDDINGS_LABEL
from export.validate import ValidationSetup, compare, runtime_generator, setup_for
from service.runtime.manifest import (
    VALIDATION_FILE,
    Manifest,
    PackageError,
    PositionedFiles,
    Variant,
    file_entry,
    write_json_atomic,
)

PRECISION = "int8"
# Token agreement with the package as it was (greedy and beam) below which nothing changes:
# a check that the rewrite broke nothing, not a quality bound. int8 rounding of the
# embeddings flips near-tie tokens, and a flipped token changes the rest of its sequence;
# a broken table or scale keeps almost none (docs/export.md, per-row int8 embeddings).
MIN_AGREEMENT = 0.8
REFERENCE = "the package's int8 variant before the rewrite (same runtime, same inputs)"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ShrinkResult:
    """What :func:`shrink_package` did."""

    changed: bool
    bytes_before: int
    bytes_after: int
    files: dict[str, EmbeddingReport]
    agreement: dict[str, Any]


def _variant_files(variant: Variant) -> list[str]:
    """Package-relative paths of the variant's ONNX files."""
    paths = [variant.encoder.path, variant.decoder.path]
    if variant.positioned is not None:
        paths += [variant.positioned.decoder.path, variant.positioned.cross_kv.path]
    return paths


def _outputs(package: Path, setup: ValidationSetup, positioned: bool) -> dict[str, Any]:
    generate = runtime_generator(package, PRECISION, setup)
    out: dict[str, Any] = {"greedy": generate(1), "beam": generate(setup.beam_size)}
    if positioned:
        from export.positioned_package import positioned_outputs

        out["positioned_greedy"] = positioned_outputs(package, PRECISION, setup, 1)
        out["positioned_beam"] = positioned_outputs(package, PRECISION, setup, setup.beam_size)
    return out


def _agreement(
    before: dict[str, Any], after: dict[str, Any], eos: int, prefix: str = ""
) -> dict[str, Any]:
    greedy = compare(before[f"{prefix}greedy"], after[f"{prefix}greedy"], eos)
    beam = compare(before[f"{prefix}beam"], after[f"{prefix}beam"], eos)
    return {
        "reference": REFERENCE,
        "greedy_exact": greedy.exact,
        "beam_exact": beam.exact,
        "greedy_token_agreement": round(greedy.token_agreement, 6),
        "beam_token_agreement": round(beam.token_agreement, 6),
        "mismatches": {"greedy": greedy.mismatches, "beam": beam.mismatches},
    }


def _relabel(label: str) -> str:
    return label if EMBEDDINGS_LABEL in label else f"{label}, {EMBEDDINGS_LABEL}"


def _rewritten_manifest(manifest: Manifest, root: Path) -> Manifest:
    """The manifest with the int8 variant's file entries re-read from ``root``."""
    variant = manifest.variants[PRECISION]
    update: dict[str, Any] = {
        "encoder": file_entry(root / variant.encoder.path, root),
        "decoder": file_entry(root / variant.decoder.path, root),
        "quantization": _relabel(variant.quantization),
    }
    if variant.positioned is not None:
        update["positioned"] = PositionedFiles(
            decoder=file_entry(root / variant.positioned.decoder.path, root),
            cross_kv=file_entry(root / variant.positioned.cross_kv.path, root),
            quantization=_relabel(variant.positioned.quantization),
            validated=variant.positioned.validated,
        )
    variants = {**manifest.variants, PRECISION: variant.model_copy(update=update)}
    return manifest.model_copy(update={"variants": variants})


def shrink_package(
    package: str | Path, min_agreement: float = MIN_AGREEMENT, progress: Progress | None = None
) -> ShrinkResult:
    """Store the int8 variant's token embeddings of ``package`` as per-row int8 (in place,
    after checking the rewritten copy against the package); see the module docstring.
    UsageError for a package without an int8 variant, ValidationFailedError (package
    unchanged) when the agreement is below ``min_agreement``."""
    say: Progress = progress or (lambda message: None)
    root = Path(package)
    try:
        manifest = Manifest.load(root)
        if PRECISION not in manifest.variants:
            raise UsageError(f"{root}: the package has no {PRECISION} variant")
        manifest.verify_files(root, [PRECISION])
    except PackageError as exc:
        raise UsageError(f"{root}: {exc}") from exc
    variant = manifest.variants[PRECISION]
    files = _variant_files(variant)
    bytes_before = sum((root / path).stat().st_size for path in files)
    with tempfile.TemporaryDirectory(prefix=f".{root.name}-shrink-", dir=root.parent) as tmp:
        copy = Path(tmp) / root.name
        shutil.copytree(root, copy)
        reports = {path: quantize_embeddings_file(copy / path, copy / path) for path in files}
        for path, report in reports.items():
            say(
                f"{path}: {report.quantized} tables int8, {report.tied} tied lm_head "
                f"stored once, {report.bytes_saved} bytes fewer"
            )
        if not any(report.changed for report in reports.values()):
            say("nothing to rewrite: the token embeddings are already int8")
            return ShrinkResult(False, bytes_before, bytes_before, reports, {})
        rewritten = _rewritten_manifest(manifest, copy)
        rewritten.write(copy)
        setup = setup_for(manifest)
        positioned = variant.positioned is not None
        say("comparing the rewritten package with the original (greedy, beam)")
        before, after = _outputs(root, setup, positioned), _outputs(copy, setup, positioned)
        eos = manifest.model.eos_token_id
        agreement = {"merged": _agreement(before, after, eos)}
        if positioned:
            agreement["positioned"] = _agreement(before, after, eos, "positioned_")
        low = [
            f"{name} {mode} token agreement {entry[f'{mode}_token_agreement']:.3f}"
            for name, entry in agreement.items()
            for mode in ("greedy", "beam")
            if entry[f"{mode}_token_agreement"] < min_agreement
        ]
        if low:
            raise ValidationFailedError(
                f"the rewritten package differs from the original ({'; '.join(low)}; "
                f"required {min_agreement}); {root} is unchanged"
            )
        bytes_after = sum((copy / path).stat().st_size for path in files)
        for path in files:
            os.replace(copy / path, root / path)
        rewritten.write(root)
    _record(root, rewritten, agreement, bytes_before, bytes_after, reports)
    return ShrinkResult(True, bytes_before, bytes_after, reports, agreement)


def _record(
    root: Path,
    manifest: Manifest,
    agreement: dict[str, Any],
    bytes_before: int,
    bytes_after: int,
    reports: dict[str, EmbeddingReport],
) -> None:
    """Add the comparison to validation.json (created when the package had none)."""
    path = root / VALIDATION_FILE
    validation: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    variant = manifest.variants[PRECISION]
    entry = {
        "tool": "python -m export.shrink",
        "quantization": EMBEDDINGS_LABEL,
        "bytes_before": bytes_before,
        "bytes_after": bytes_after,
        "files": {file: report.as_dict() for file, report in reports.items()},
        **agreement["merged"],
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    precisions = validation.setdefault("precisions", {})
    int8 = precisions.setdefault(PRECISION, {})
    int8["quantization"] = variant.quantization
    int8["embeddings"] = entry
    if "positioned" in agreement and variant.positioned is not None:
        positioned = validation.setdefault("positioned", {}).setdefault(PRECISION, {})
        positioned["quantization"] = variant.positioned.quantization
        positioned["embeddings"] = {"tool": entry["tool"], **agreement["positioned"]}
    write_json_atomic(path, validation)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m export.shrink",
        description="Store the int8 variant's token embeddings of an exported package as "
        "per-row int8 (a tied lm_head shares the table), checked against the package itself.",
    )
    parser.add_argument("package", metavar="PACKAGE", help="model package directory")
    parser.add_argument(
        "--min-agreement",
        type=float,
        default=MIN_AGREEMENT,
        help="token agreement with the package as it was (greedy and beam) below which "
        f"nothing is changed; default {MIN_AGREEMENT}",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        result = shrink_package(args.package, args.min_agreement, progress)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if not result.changed:
        print(f"{args.package}: unchanged ({result.bytes_before} bytes of int8 ONNX files)")
        return 0
    for name, entry in result.agreement.items():
        print(
            f"{name}: greedy_exact={entry['greedy_exact']:.3f} "
            f"beam_exact={entry['beam_exact']:.3f} "
            f"greedy_token_agreement={entry['greedy_token_agreement']:.3f} "
            f"beam_token_agreement={entry['beam_token_agreement']:.3f} (vs the original)"
        )
    print(f"{args.package}: int8 ONNX files {result.bytes_before} -> {result.bytes_after} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
