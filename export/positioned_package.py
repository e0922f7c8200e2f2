"""The optional positioned-decoder graphs of a package (``python -m export ... --positioned``).

For each CPU variant of a package being written (``fp32``, ``int8``) this adds the pair of
``export/positioned_decoder.py`` beside the merged decoder, recorded in the manifest as
``Variant.positioned`` (an optional field: packages without it load as before):

- ``fp32/decoder_positioned.onnx``: the export with the pipeline's ORT fusions
  (:func:`~export.positioned_decoder.fuse_decoder`), or unfused when the fused graph is not
  token-exact; ``fp32/cross_kv.onnx`` as exported. Both get constant Reshape targets first
  (``export/static_reshapes.py``; exact, so the unfused and int8 graphs have them too).
  Shape inference is told the decoder's contract (``DIM_RELATIONS``: the self-attention
  mask covers the past plus the new step); without it, it stops at the masked softmax,
  where the mask's length meets the cache's. Tiny Marian: 12 decoder Reshapes, 297 -> 129
  nodes before fusing. Where inference still fails, the targets stay dynamic and the
  validation entry's ``notes`` say so.
- ``int8/decoder_positioned.onnx`` and ``int8/cross_kv.onnx``: the project's per-row int8
  of the unfused fp32 graphs, with the recipe the pipeline kept for the merged int8
  decoder (``INT8_CANDIDATES``: all MatMuls and the token embeddings, or the embeddings
  or the output projection left in fp32), so
  both int8 decoders of a package quantize alike. Per-row int8 keeps a row's result
  independent of the rows beside it (tested); ORT's dynamic int8 does not.
- ``fp16`` (CUDA) gets none: there is no fp16 / IO-binding variant of this decoder yet.

Validation runs the service's own runtime (``Seq2SeqRuntime.new_positioned_batch``) on
the package's validation inputs with a schedule that mixes positions in every call (input
``i`` joins the running batch before step ``i``) and compares with transformers'
``generate()``, greedy and beam search (the validation's beam size). The fp32 pair must
be greedy token-exact or the export fails (beam agreement is recorded, as for the merged
decoder); an int8 pair is kept and marked ``validated`` only when greedy and beam are
exact (its agreement is recorded either way: the merged int8 decoder may differ from
fp32 within a tolerance too).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from export.errors import UsageError, ValidationFailedError
from export.positioned_decoder import (
    DIM_RELATIONS,
    FAMILIES,
    PositionedExport,
    export_positioned,
    fuse_decoder,
)
from export.quantize import Int8Options, quantize_file
from export.static_reshapes import try_constant_reshape_targets
from export.validate import Reference, ValidationSetup, compare, setup_for
from service.runtime.manifest import (
    CROSS_KV_FILE,
    POSITIONED_DECODER_FILE,
    Manifest,
    PositionedFiles,
    file_entry,
)

POSITIONED_PRECISIONS = ("fp32", "int8")
INT8_OPTIONS = Int8Options(method="per_row")
SCHEDULE = "one running batch; validation input i joins before decoder step i"
FP16_NOT_BUILT = "no fp16/CUDA variant of the positioned decoder yet"

Progress = Callable[[str], None]


def int8_options_for(manifest: Manifest) -> Int8Options:
    """The per-row int8 recipe of the package's merged int8 decoder (by its label), else
    plain per-row int8."""
    from export.pipeline import INT8_CANDIDATES

    if "int8" in manifest.variants:
        label = manifest.variants["int8"].quantization
        for options in INT8_CANDIDATES:
            if options.label == label:
                return options
    return INT8_OPTIONS


def check_positioned_family(family: str) -> None:
    """UsageError when the positioned decoder has no wrapper for ``family``."""
    if family not in FAMILIES.values():
        raise UsageError(
            f"--positioned: no positioned decoder for family {family!r} "
            f"(supported: {', '.join(sorted(FAMILIES.values()))})"
        )


def _install(
    manifest: Manifest, root: Path, precision: str, decoder: Path, cross_kv: Path, label: str
) -> Manifest:
    """Copy the pair into ``root/precision``; the manifest (written) records it, not yet
    validated (the runtime finds the files through the manifest on disk)."""
    folder = root / precision
    shutil.copyfile(decoder, folder / POSITIONED_DECODER_FILE)
    shutil.copyfile(cross_kv, folder / CROSS_KV_FILE)
    manifest = _with_positioned(manifest, root, precision, label, validated=False)
    manifest.write(root)
    return manifest


def _with_positioned(
    manifest: Manifest, root: Path, precision: str, quantization: str, validated: bool
) -> Manifest:
    folder = root / precision
    files = PositionedFiles(
        decoder=file_entry(folder / POSITIONED_DECODER_FILE, root),
        cross_kv=file_entry(folder / CROSS_KV_FILE, root),
        quantization=quantization,
        validated=validated,
    )
    variant = manifest.variants[precision].model_copy(update={"positioned": files})
    return manifest.model_copy(update={"variants": {**manifest.variants, precision: variant}})


def positioned_outputs(
    root: Path, precision: str, setup: ValidationSetup, num_beams: int
) -> list[list[int]]:
    """Outputs of the package's positioned pair on the validation inputs (greedy, or beam
    search with ``num_beams``), input ``i`` joining the running batch before step ``i``
    (the service's runtime, CPU)."""
    from service.runtime import GenerationOptions, load_runtime

    runtime = load_runtime(root, device="cpu", precision=precision, positioned=True)
    ids = runtime.encode_texts(
        setup.texts, source_lang=setup.source_lang, target_lang=setup.target_lang
    )
    options = runtime.resolve(
        GenerationOptions(
            num_beams=num_beams, do_sample=False, max_new_tokens=setup.max_new_tokens
        ),
        target_lang=setup.target_lang,
    )
    batch = runtime.new_positioned_batch()
    out: dict[int, list[int]] = {}
    step = 0
    while len(out) < len(ids):
        if step < len(ids):
            batch.add(step, ids[step], options)
        for event in batch.step():
            if event.finished and event.sequences:
                out[int(event.key)] = list(event.sequences[0])  # type: ignore[call-overload]
        step += 1
        if step > 10 * (len(ids) + setup.max_new_tokens):
            raise ValidationFailedError("positioned decoding did not finish")
    return [out[i] for i in range(len(ids))]


def _check(root: Path, precision: str, reference: Reference) -> dict[str, Any]:
    eos = reference.manifest.model.eos_token_id
    beams = reference.setup.beam_size
    setup = reference.setup
    greedy = compare(reference.generate(1), positioned_outputs(root, precision, setup, 1), eos)
    beam = compare(
        reference.generate(beams), positioned_outputs(root, precision, setup, beams), eos
    )
    return {
        "greedy_exact": greedy.exact,
        "beam_exact": beam.exact,
        "greedy_token_agreement": round(greedy.token_agreement, 6),
        "beam_token_agreement": round(beam.token_agreement, 6),
        "mismatches": {"greedy": greedy.mismatches, "beam": beam.mismatches},
    }


def add_positioned(
    checkpoint_dir: Path,
    manifest: Manifest,
    root: Path,
    work: Path,
    validate: bool,
    progress: Progress,
) -> tuple[Manifest, dict[str, Any]]:
    """Export, fuse, quantize, install and (``validate``) check the positioned pair of every
    CPU variant in ``manifest``; returns the updated manifest and the validation entry
    (``validation.json`` ``positioned``). ValidationFailedError if fp32 is not exact."""
    exported = export_positioned(checkpoint_dir, work / "positioned")
    fused = work / "positioned-fused" / POSITIONED_DECODER_FILE
    fused.parent.mkdir(parents=True, exist_ok=True)
    # Exact, so before fusing: the unfused fallback and the int8 graphs get it too.
    static_reshapes: dict[str, int] = {}
    notes: list[str] = []
    for label, path in (("decoder", exported.decoder), ("cross_kv", exported.cross_kv)):
        static_reshapes[label], failure = try_constant_reshape_targets(path, DIM_RELATIONS)
        if failure is not None:
            notes.append(f"{label}: {failure}")
    fusions = fuse_decoder(exported, manifest.family, fused)
    reference = Reference(checkpoint_dir, manifest, setup_for(manifest)) if validate else None
    entry: dict[str, Any] = {
        "schedule": SCHEDULE,
        "fusions": fusions,
        "static_reshapes": static_reshapes,
        "notes": notes,
    }

    fp32_decoder = fused if fusions else exported.decoder
    manifest = _install(manifest, root, "fp32", fp32_decoder, exported.cross_kv, "none")
    fp32: dict[str, Any] = {"validated": False, "reason": "export ran with validation disabled"}
    if reference is not None:
        fp32 = _check(root, "fp32", reference)
        if fp32["greedy_exact"] < 1.0 and fp32_decoder == fused:
            progress("[positioned] fused fp32 not exact; falling back to the unfused graph")
            entry["fusions_dropped"] = f"fused fp32 not exact ({fp32['greedy_exact']:.3f})"
            manifest = _install(manifest, root, "fp32", exported.decoder, exported.cross_kv, "none")
            fp32 = _check(root, "fp32", reference)
        if fp32["greedy_exact"] < 1.0:
            raise ValidationFailedError(
                f"the positioned fp32 decoder does not reproduce generate() (greedy_exact "
                f"{fp32['greedy_exact']:.3f}, mismatched inputs {fp32['mismatches']}); "
                "no package written"
            )
        fp32["validated"] = True
        progress(
            f"[positioned] fp32: greedy_exact={fp32['greedy_exact']:.3f} "
            f"beam_exact={fp32['beam_exact']:.3f}"
        )
    manifest = _with_positioned(manifest, root, "fp32", "none", bool(fp32["validated"]))
    entry["fp32"] = fp32

    if "int8" in manifest.variants:
        folder = work / "positioned-int8"
        folder.mkdir(parents=True, exist_ok=True)
        quantized = PositionedExport(
            decoder=folder / POSITIONED_DECODER_FILE,
            cross_kv=folder / CROSS_KV_FILE,
            num_layers=exported.num_layers,
            num_heads=exported.num_heads,
            head_dim=exported.head_dim,
        )
        options = int8_options_for(manifest)
        quantize_file(exported.decoder, quantized.decoder, options)
        quantize_file(exported.cross_kv, quantized.cross_kv, options)
        label = options.label
        manifest = _install(manifest, root, "int8", quantized.decoder, quantized.cross_kv, label)
        int8: dict[str, Any] = {"validated": False, "reason": "export ran with validation disabled"}
        if reference is not None:
            int8 = _check(root, "int8", reference)
            int8["validated"] = int8["greedy_exact"] == 1.0 and int8["beam_exact"] == 1.0
            progress(
                f"[positioned] int8: greedy_exact={int8['greedy_exact']:.3f} "
                f"beam_exact={int8['beam_exact']:.3f} "
                f"token_agreement={int8['greedy_token_agreement']:.3f}"
            )
        manifest = _with_positioned(manifest, root, "int8", label, bool(int8["validated"]))
        entry["int8"] = {**int8, "quantization": label}
    if "fp16" in manifest.variants:
        entry["fp16"] = {"validated": False, "reason": FP16_NOT_BUILT}
    return manifest, entry
