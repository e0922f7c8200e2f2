"""The export pipeline: checkpoint -> validated ONNX model package.

The build cache that tests, benchmarks and ``training.defaults`` reuse lives in
export/cache.py.
"""

from __future__ import annotations

import contextlib
import gc
import json
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from export.errors import UsageError, ValidationFailedError
from export.fp16 import convert_pair
from export.metadata import (
    chat_config,
    generation_config_dict,
    generation_defaults,
    languages,
    load_tokenizer,
    model_info,
    task_prefix,
    tool_versions,
    write_tokenizer_dir,
)
from export.onnx_export import OnnxPair, export_onnx
from export.optimize import OptimizeReport, optimize_pair
from export.package import PackageWriter, check_name
from export.quantize import Int8Options, quantize_pair
from export.source import Checkpoint, check_task, resolve_checkpoint
from export.validate import (
    Generate,
    Reference,
    ValidationSetup,
    onnx_first_step_logits,
    setup_for,
    validate_variant,
)
from service.runtime.manifest import (
    DECODER_FILE,
    ENCODER_FILE,
    PRECISION_DEVICE,
    PRECISIONS,
    TASKS,
    TOKENIZER_DIR,
    VALIDATION_FILE,
    Manifest,
    PackageError,
    SourceInfo,
    TokenizerInfo,
    Variant,
    file_entry,
    write_json_atomic,
)

# int8 recipes, tried in order until one is token-exact; otherwise ``choose_int8`` keeps
# the most quantized one within tolerance of the best (smaller and faster): int8 token
# embeddings (about 1 byte per parameter), then fp32 embeddings with an int8 lm_head (a
# model whose embeddings lose too much in int8; tiny T5 did), then an fp32 lm_head. Only per-row
# int8 is a candidate: dynamic int8 shares one activation scale across the batch, so a
# request's output would depend on its batch neighbours, and weight-only MatMulNBits ran
# slower than fp32 at batch 32-64 on an AVX2 CPU (docs/export.md, "int8 method").
INT8_CANDIDATES = (
    Int8Options(method="per_row"),
    Int8Options(method="per_row", int8_embeddings=False),
    Int8Options(method="per_row", lm_head_fp32=True),
)
# A more quantized int8 candidate is kept unless a later one agrees with the reference on
# more than this fraction of extra tokens (greedy and beam). On 8 inputs one flipped
# near-tie token decides "exact", while an fp32 output projection costs a large share of
# int8 decode speed on big vocabularies (docs/benchmarks.md, "lm_head").
INT8_AGREEMENT_TOLERANCE = 0.02
if TYPE_CHECKING:  # the name the module __getattr__ below forwards
    from export.cache import ensure_package  # noqa: F401

FP16_NOT_VALIDATED = "fp16 is the CUDA variant and no CUDA GPU was available to validate it"

Progress = Callable[[str], None]
GeneratorFactory = Callable[[Path, str, ValidationSetup], Generate]


def parse_precisions(precisions: str | Sequence[str]) -> tuple[str, ...]:
    """Normalize "fp32,int8" or a sequence; fp32 is always included (it is the reference)."""
    items = precisions.split(",") if isinstance(precisions, str) else list(precisions)
    wanted = [p.strip() for p in items if p.strip()]
    unknown = [p for p in wanted if p not in PRECISIONS]
    if unknown:
        raise UsageError(
            f"unknown precision {', '.join(map(repr, unknown))} "
            f"(choose from {', '.join(PRECISIONS)})"
        )
    return tuple(p for p in PRECISIONS if p in wanted or p == "fp32")


def check_task_name(task: str) -> None:
    """Raise UsageError for a task the package format does not know."""
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r} (choose from {', '.join(TASKS)})")


class Stages:
    """Reports each stage's start and duration through ``progress`` and keeps timings."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress: Progress = progress or (lambda message: None)
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str, detail: str = "") -> Iterator[None]:
        """Time one stage."""
        self.progress(f"[{name}] {detail}".rstrip())
        started = time.perf_counter()
        yield
        elapsed = time.perf_counter() - started
        self.timings[name] = round(self.timings.get(name, 0.0) + elapsed, 3)
        self.progress(f"[{name}] done in {elapsed:.1f}s")


def _variant(root: Path, precision: str, quantization: str) -> Variant:
    folder = root / precision
    return Variant(
        encoder=file_entry(folder / ENCODER_FILE, root),
        decoder=file_entry(folder / DECODER_FILE, root),
        device="cuda" if PRECISION_DEVICE[precision] == "cuda" else "cpu",
        quantization=quantization,
        validated=False,
    )


def _install(pair: OnnxPair, root: Path, precision: str) -> None:
    """Copy a pair of files into ``root/precision`` under the package file names."""
    folder = root / precision
    folder.mkdir(exist_ok=True)
    shutil.copyfile(pair.encoder, folder / ENCODER_FILE)
    shutil.copyfile(pair.decoder, folder / DECODER_FILE)


def _build_manifest(
    checkpoint: Checkpoint, task: str, name: str, root: Path, quantization: dict[str, str]
) -> Manifest:
    tokenizer = load_tokenizer(root / TOKENIZER_DIR)
    generation = generation_config_dict(checkpoint)
    langs = languages(checkpoint, tokenizer)
    tokenizer_files = sorted(p for p in (root / TOKENIZER_DIR).rglob("*") if p.is_file())
    return Manifest(
        name=name,
        task=task,  # type: ignore[arg-type]
        family=checkpoint.family,
        description=f"{checkpoint.family} {task} model exported from {checkpoint.ref}",
        source=SourceInfo(ref=checkpoint.ref, sha256=checkpoint.sha256, kind=checkpoint.kind),
        languages=langs,
        task_prefix=task_prefix(checkpoint, task, langs),
        chat=chat_config(checkpoint, task),
        model=model_info(checkpoint, generation),
        generation=generation_defaults(generation),
        tokenizer=TokenizerInfo(
            dir=TOKENIZER_DIR, files=[file_entry(p, root) for p in tokenizer_files]
        ),
        variants={p: _variant(root, p, q) for p, q in quantization.items()},
        tools=tool_versions(),
    )


def _with_variant(manifest: Manifest, root: Path, precision: str, **changes: Any) -> Manifest:
    """The manifest with one variant's file entries re-read from disk (and fields changed)."""
    current = manifest.variants[precision]
    fresh = _variant(root, precision, current.quantization).model_copy(update=changes)
    variants = {**manifest.variants, precision: fresh}
    return manifest.model_copy(update={"variants": variants})


def _geometry(checkpoint: Checkpoint) -> tuple[tuple[int, int], tuple[int, int]]:
    """(num_heads, hidden_size) of the encoder and of the decoder."""
    config = checkpoint.config
    hidden = int(config["d_model"])
    encoder_heads = config.get("encoder_attention_heads") or config.get("num_heads") or 0
    decoder_heads = config.get("decoder_attention_heads") or config.get("num_heads") or 0
    return (int(encoder_heads), hidden), (int(decoder_heads), hidden)


def _exact(result: dict[str, Any]) -> bool:
    return bool(result["greedy_exact"] == 1.0 and result["beam_exact"] == 1.0)


def choose_int8(results: Sequence[dict[str, Any]], tolerance: float) -> int:
    """Index of the int8 candidate to keep (candidates run from most to least quantized).

    The first whose greedy and beam token agreement are both within ``tolerance`` of the
    best candidates' is kept: it is smaller and faster, and measurably as faithful.
    """
    best_greedy = max(r["greedy_token_agreement"] for r in results)
    best_beam = max(r["beam_token_agreement"] for r in results)
    return next(  # the best candidate itself always qualifies
        index
        for index, result in enumerate(results)
        if result["greedy_token_agreement"] >= best_greedy - tolerance
        and result["beam_token_agreement"] >= best_beam - tolerance
    )


def default_generator() -> tuple[GeneratorFactory, str]:
    """The project's runtime generator (the only runner validation uses)."""
    from export.validate import runtime_generator

    return runtime_generator, "service.runtime"


def export_package(
    source: str | Path,
    task: str,
    name: str,
    out_dir: str | Path,
    precisions: str | Sequence[str] = ("fp32", "int8"),
    overwrite: bool = False,
    validate: bool = True,
    progress: Progress | None = None,
    positioned: bool = False,
) -> Path:
    """Export SOURCE into ``out_dir/name`` as a validated model package; return its path.

    ``positioned``: also write the positioned decoder pair of every CPU variant
    (``export/positioned_package.py``; ``Variant.positioned`` in the manifest).
    Raises an ``ExportError`` subclass (with a one-line message) for every user-facing
    problem; nothing is left in ``out_dir`` when it does.
    """
    check_task_name(task)
    wanted = parse_precisions(precisions)
    check_name(name)
    checkpoint = resolve_checkpoint(source)
    check_task(checkpoint, task)
    if positioned:
        from export.positioned_package import check_positioned_family

        check_positioned_family(checkpoint.family)
    source_tokenizer = load_tokenizer(checkpoint.path)
    writer = PackageWriter(Path(out_dir), name, overwrite)
    stages = Stages(progress)
    with writer as root:
        work = root / ".work"
        with stages.stage("export", f"{checkpoint.family} checkpoint {checkpoint.ref} -> ONNX"):
            exported = export_onnx(checkpoint.path, work / "onnx")
        with stages.stage("optimize", "ORT transformer fusions"):
            (root / "fp32").mkdir()
            fp32_pair = OnnxPair(root / "fp32" / ENCODER_FILE, root / "fp32" / DECODER_FILE)
            encoder_geometry, decoder_geometry = _geometry(checkpoint)
            report = optimize_pair(
                exported,
                fp32_pair,
                checkpoint.family,
                encoder_geometry,
                decoder_geometry,
                fused_dir=work / "fused",
            )
            write_tokenizer_dir(checkpoint, source_tokenizer, root / TOKENIZER_DIR)
            gc.collect()  # the ONNX graph objects hold reference cycles; free them now
            stages.progress(
                f"[optimize] fusions: encoder {report.encoder_fusions or 'none'}, "
                f"decoder {report.decoder_fusions or 'none'}"
            )
        quantization = {"fp32": "none"}
        int8_sources = (fp32_pair.encoder, report.fused_unmerged or exported.unmerged)

        int8_built: dict[int, OnnxPair] = {}

        def build_int8(index: int) -> OnnxPair:
            if index not in int8_built:
                folder = work / f"int8-{index}"
                int8_built[index] = quantize_pair(*int8_sources, folder, INT8_CANDIDATES[index])
            return int8_built[index]

        if len(wanted) > 1:
            with stages.stage("quantize", "+".join(p for p in wanted if p != "fp32")):
                if "int8" in wanted:
                    # Later recipes are built during validation, only if still needed.
                    _install(build_int8(0), root, "int8")
                    quantization["int8"] = INT8_CANDIDATES[0].label
                if "fp16" in wanted:
                    convert_pair(
                        exported.pair.encoder, exported.unmerged, root / "fp16", checkpoint.family
                    )
                    quantization["fp16"] = "fp16 weights/activations, fp32 IO and lm_head"
        manifest = _build_manifest(checkpoint, task, name, root, quantization)
        manifest.write(root)
        validation: dict[str, Any] = {"format_version": 1, "optimization": report.as_dict()}
        if validate:
            with stages.stage("validate", "runtime vs transformers generate()"):
                manifest, validation = _validate(
                    checkpoint, manifest, root, exported.pair, report, build_int8, stages
                )
        else:
            validation["skipped"] = "export ran with validation disabled"
        if positioned:
            from export.positioned_package import add_positioned

            with stages.stage("positioned", "positioned decoder + cross K/V (fp32, int8)"):
                manifest, validation["positioned"] = add_positioned(
                    checkpoint.path, manifest, root, work, validate, stages.progress
                )
        validation["timings_s"] = stages.timings
        manifest.write(root)
        write_json_atomic(root / VALIDATION_FILE, validation)
        shutil.rmtree(work)
        return writer.commit()


def _validate(
    checkpoint: Checkpoint,
    manifest: Manifest,
    root: Path,
    raw: OnnxPair,
    report: OptimizeReport,
    build_int8: Callable[[int], OnnxPair],
    stages: Stages,
) -> tuple[Manifest, dict[str, Any]]:
    factory, runner = default_generator()
    setup = setup_for(manifest)
    reference = Reference(checkpoint.path, manifest, setup)
    results: dict[str, Any] = {}

    fp32 = _checked_validation(root, "fp32", reference, factory)
    if not _exact(fp32) and report.optimized:
        stages.progress("[validate] fused fp32 not exact; falling back to the unfused export")
        report.notes.append(f"fusions dropped: fused fp32 was not exact ({_summary(fp32)})")
        report.encoder_optimized = report.decoder_optimized = False
        _install(raw, root, "fp32")
        manifest = _with_variant(manifest, root, "fp32")
        manifest.write(root)
        fp32 = _checked_validation(root, "fp32", reference, factory)
    stages.progress(f"[validate] fp32: {_summary(fp32)}")
    if fp32["greedy_exact"] < 1.0:
        raise ValidationFailedError(
            f"fp32 package does not reproduce the checkpoint's generate() output "
            f"({_summary(fp32)}; mismatched inputs {fp32['mismatches']['greedy']}); "
            "no package written"
        )
    results["fp32"] = fp32
    manifest = _with_variant(manifest, root, "fp32", validated=True)

    if "int8" in manifest.variants:
        candidates = []
        for index, options in enumerate(INT8_CANDIDATES):
            pair = build_int8(index)
            _install(pair, root, "int8")
            manifest = _with_variant(manifest, root, "int8", quantization=options.label)
            manifest.write(root)
            try:
                result = _checked_validation(root, "int8", reference, factory)
            except ValidationFailedError as exc:
                stages.progress(f"[validate] int8 ({options.label}) unusable: {exc}")
                continue
            stages.progress(f"[validate] int8 ({options.label}): {_summary(result)}")
            candidates.append((options, pair, result))
            if _exact(result):
                break  # nothing left to gain from keeping layers in fp32
        if not candidates:
            raise ValidationFailedError("no int8 variant could be run; no package written")
        best = candidates[choose_int8([c[2] for c in candidates], INT8_AGREEMENT_TOLERANCE)]
        _install(best[1], root, "int8")
        manifest = _with_variant(manifest, root, "int8", quantization=best[0].label, validated=True)
        results["int8"] = {
            **best[2],
            "quantization": best[0].label,
            "candidates": [
                {"quantization": o.label, **{k: r[k] for k in _SUMMARY_KEYS}}
                for o, _, r in candidates
            ],
        }
    if "fp16" in manifest.variants:
        if _cuda_available():
            fp16 = _checked_validation(root, "fp16", reference, factory)
            stages.progress(f"[validate] fp16 (CUDA): {_summary(fp16)}")
            results["fp16"] = fp16
            manifest = _with_variant(manifest, root, "fp16", validated=True)
        else:
            results["fp16"] = {"validated": False, "reason": FP16_NOT_VALIDATED}
            results["fp16"].update(_fp16_cpu_check(root, manifest, reference))
    validation = {
        "format_version": 1,
        "runner": runner,
        "reference": "transformers generate() on the source checkpoint (torch, CPU)",
        "inputs": setup.as_dict(),
        "optimization": report.as_dict(),
        "precisions": results,
    }
    return manifest, validation


def _cuda_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def _fp16_cpu_check(root: Path, manifest: Manifest, reference: Reference) -> dict[str, Any]:
    """First-step logits of the fp16 graph run on CPU: evidence the conversion is sane
    (an fp16 overflow shows up as inf/NaN), never a validation of the CUDA variant."""
    encoder, decoder = manifest.variant_paths(root, "fp16")
    try:
        logits = onnx_first_step_logits(encoder, decoder, reference.batch, manifest)
    except Exception as exc:  # ORT lacks CPU kernels for some fp16 ops; informational only
        return {"cpu_check": f"not run: {type(exc).__name__}: {exc}"}
    diff = float(np.abs(logits - reference.first_step_logits()).max())
    return {
        "cpu_check": "first decoder step of the fp16 graph on the CPU provider (informational)",
        "cpu_first_step_max_abs_logit_diff": diff,
        "cpu_logits_finite": bool(np.isfinite(logits).all()),
    }


def _checked_validation(
    root: Path, precision: str, reference: Reference, factory: GeneratorFactory
) -> dict[str, Any]:
    """validate_variant, with a variant the runtime cannot load reported as a failure."""
    try:
        return validate_variant(root, precision, reference, factory)
    except PackageError as exc:
        raise ValidationFailedError(f"the {precision} variant does not run: {exc}") from exc


_SUMMARY_KEYS = (
    "greedy_exact",
    "beam_exact",
    "greedy_token_agreement",
    "beam_token_agreement",
    "first_step_max_abs_logit_diff",
)


def _summary(result: dict[str, Any]) -> str:
    return (
        f"greedy_exact={result['greedy_exact']:.3f} beam_exact={result['beam_exact']:.3f} "
        f"token_agreement={result['greedy_token_agreement']:.3f} "
        f"max_logit_diff={result['first_step_max_abs_logit_diff']:.2e}"
    )


def read_validation(package_dir: str | Path) -> dict[str, Any]:
    """The package's validation.json."""
    data: dict[str, Any] = json.loads((Path(package_dir) / VALIDATION_FILE).read_text())
    return data


def __getattr__(name: str) -> object:
    # training/defaults.py (owned elsewhere) still imports ensure_package from here; the
    # cache lives in export/cache.py, which imports this module, so forward lazily.
    if name == "ensure_package":
        from export.cache import ensure_package

        return ensure_package
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
