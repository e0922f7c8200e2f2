"""Stage 2: ORT transformer fusions where ONNX Runtime's optimizer supports the graph.

Measured here (onnxruntime 1.32, optimum-onnx 0.1.0):
- the optimizer's reshape fusion crashes on optimum's exports (``TypeError`` in
  fusion_reshape on scalar Concat inputs), so it is skipped;
- on the *merged* decoder the optimizer cannot see into the ``If`` branches and prunes the
  whole graph (no ``logits`` left), so the two unmerged decoders are fused separately and
  merged again with optimum's ``merge_decoders``;
- what it adds over ONNX Runtime's own session-level optimization (ORT_ENABLE_ALL, which
  already fuses Gelu/BiasGelu/MatMul+scale) is SkipLayerNormalization (residual Add +
  LayerNorm): in a 2+2-layer BART-like, 4 in the encoder and 6 per decoder. No attention
  fusion matches these graphs.
After fusion every graph gets constant ``Reshape`` targets where symbolic shape inference
proves them (``export/static_reshapes.py``; the optimizer's own reshape fusion is the one
that crashes), which removes the shape-computing chains behind them. The pass runs on the
optimizer's model in memory, so each file is written once and the load check sees the
final graph.
The pipeline keeps the optimized files only if the fp32 validation stays token-exact.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from export.onnx_export import ExportedOnnx, OnnxPair, UnmergedDecoders, merge_into
from export.static_reshapes import try_constant_reshape_targets_model

# ORT optimizer model types by package family (BART-like graphs share one fusion set).
FUSION_MODEL_TYPE: dict[str, str] = {
    "marian": "bart",
    "bart": "bart",
    "mbart": "bart",
    "pegasus": "bart",
    "blenderbot": "bart",
    "m2m100": "bart",
    "t5": "t5",
}


@dataclass
class OptimizeReport:
    """What the optimize stage did to each file."""

    encoder_fusions: dict[str, int] = field(default_factory=dict)
    decoder_fusions: dict[str, int] = field(default_factory=dict)
    encoder_optimized: bool = False
    decoder_optimized: bool = False
    # Reshapes given a constant target, by file (encoder, decoder, decoder_with_past).
    static_reshapes: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # The fused first-step / with-past decoders (before merging), for the int8 stage.
    fused_unmerged: UnmergedDecoders | None = None

    @property
    def optimized(self) -> bool:
        """True when any fused file is in use."""
        return self.encoder_optimized or self.decoder_optimized

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form for validation.json."""
        return {
            "encoder_optimized": self.encoder_optimized,
            "encoder_fusions": self.encoder_fusions,
            "decoder_optimized": self.decoder_optimized,
            "decoder_fusions": self.decoder_fusions,
            "static_reshapes": self.static_reshapes,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class FusedGraph:
    """One graph through the ORT optimizer and the Reshape pass."""

    fusions: dict[str, int]
    reshapes: int
    reshape_failure: str | None

    def record(self, label: str, report: OptimizeReport) -> None:
        """Put the Reshape count (or why there is none) into ``report``."""
        if self.reshape_failure is not None:
            report.notes.append(f"{label}: {self.reshape_failure}")
        else:
            report.static_reshapes[label] = self.reshapes


def fuse_graph(
    src: Path,
    dst: Path,
    model_type: str,
    num_heads: int,
    hidden_size: int,
    constant_reshapes: bool = True,
) -> FusedGraph:
    """ORT's fusions, then (``constant_reshapes``) constant Reshape targets on the
    optimizer's model in memory; saved to ``dst``, which must load."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import MODEL_TYPES

    model_class = MODEL_TYPES[model_type][0]
    optimizer = model_class(onnx.load(str(src)), num_heads, hidden_size)
    # See the module docstring: this fusion crashes on optimum exports.
    optimizer.fuse_reshape = lambda: None
    if hasattr(optimizer, "rpb_fusion"):
        # T5's RelativePositionBias fused op has only a CUDA kernel; the fp32 variant is
        # for CPU (measured: the fused model does not load on the CPU provider).
        optimizer.rpb_fusion.apply = lambda: None
    options = FusionOptions(model_type)
    # Symbolic shape inference guards fusions (validation does that here) and costs most
    # of the memory: measured on the 74 M Marian decoder, 2.3 GB peak and 8 s with it,
    # 0.4 GB and 2.4 s without, the same 18 SkipLayerNormalization fusions (one more
    # per graph on BART-likes: the embedding add + LayerNorm). T5 needs it to find its
    # SkipSimplifiedLayerNormalization fusions.
    options.enable_shape_inference = model_type == "t5"
    logging.disable(logging.WARNING)  # its per-fusion warnings are expected here
    try:
        optimizer.optimize(options)
    finally:
        logging.disable(logging.NOTSET)
    optimizer.topological_sort()
    stats = optimizer.get_fused_operator_statistics()
    reshapes, failure = 0, None
    if constant_reshapes:
        reshapes, failure = try_constant_reshape_targets_model(optimizer.model)
    optimizer.save_model_to_file(str(dst))
    ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])  # must still load
    fusions = {op: int(count) for op, count in stats.items() if count}
    return FusedGraph(fusions, reshapes, failure)


def _fuse_decoder(
    exported: ExportedOnnx,
    dst: Path,
    fused_dir: Path,
    model_type: str,
    geometry: tuple[int, int],
    report: OptimizeReport,
) -> tuple[dict[str, int], UnmergedDecoders, int]:
    """Fuse both unmerged decoders and merge them into ``dst``: (fusions, the fused
    unmerged files, Reshapes given constant targets)."""
    fused_dir.mkdir(parents=True, exist_ok=True)
    fused = UnmergedDecoders(
        first=fused_dir / exported.unmerged.first.name,
        with_past=fused_dir / exported.unmerged.with_past.name,
    )
    first = fuse_graph(exported.unmerged.first, fused.first, model_type, *geometry)
    with_past = fuse_graph(exported.unmerged.with_past, fused.with_past, model_type, *geometry)
    if first.fusions != with_past.fusions:
        raise ValueError(f"decoders fused differently: {first.fusions} vs {with_past.fusions}")
    first.record("decoder", report)
    with_past.record("decoder_with_past", report)
    merge_into(fused, dst)
    return first.fusions, fused, first.reshapes + with_past.reshapes


def optimize_pair(
    exported: ExportedOnnx,
    dst: OnnxPair,
    family: str,
    encoder_geometry: tuple[int, int],
    decoder_geometry: tuple[int, int],
    fused_dir: Path,
) -> OptimizeReport:
    """Write fused copies of encoder and merged decoder to ``dst``, with constant Reshape
    targets (unfused copies where neither finds anything or fusion fails); the fused
    unmerged decoders stay in ``fused_dir``.
    Geometries are (num_heads, hidden_size)."""
    report = OptimizeReport()
    model_type = FUSION_MODEL_TYPE.get(family)
    raw = exported.pair
    if model_type is None:
        report.notes.append(f"no ORT fusion set for family {family!r}")
    else:
        try:
            encoder = fuse_graph(raw.encoder, dst.encoder, model_type, *encoder_geometry)
            encoder.record("encoder", report)
            report.encoder_fusions = encoder.fusions
            report.encoder_optimized = bool(encoder.fusions) or encoder.reshapes > 0
        except Exception as exc:  # the optimizer is best-effort; the plain export stays valid
            report.notes.append(f"encoder fusion failed: {type(exc).__name__}: {exc}")
        try:
            stats, fused, reshapes = _fuse_decoder(
                exported, dst.decoder, fused_dir, model_type, decoder_geometry, report
            )
            report.decoder_fusions = stats
            report.decoder_optimized = bool(stats) or reshapes > 0
            report.fused_unmerged = fused if report.decoder_optimized else None
        except Exception as exc:  # as above
            report.notes.append(f"decoder fusion failed: {type(exc).__name__}: {exc}")
    if not report.encoder_optimized:
        shutil.copyfile(raw.encoder, dst.encoder)
    if not report.decoder_optimized:
        shutil.copyfile(raw.decoder, dst.decoder)
    return report
