"""Stage 2: ORT transformer fusions where ONNX Runtime's optimizer supports the graph.

Measured here (onnxruntime 1.32): on optimum's exports the optimizer's reshape fusion
crashes (``TypeError`` in fusion_reshape on scalar Concat inputs), so it is skipped; and
on the *merged* decoder the optimizer cannot see into the ``If`` subgraphs and prunes the
whole graph (the result has no ``logits``), so the merged decoder is never fused offline
(ONNX Runtime still applies its own graph optimizations to it at session load). The
encoder gets LayerNorm/SkipLayerNorm/Gelu fusions; the pipeline keeps them only if the
fp32 validation stays token-exact.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

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
    encoder_optimized: bool = False
    decoder_optimized: bool = False
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form for validation.json."""
        return {
            "encoder_optimized": self.encoder_optimized,
            "encoder_fusions": self.encoder_fusions,
            "decoder_optimized": self.decoder_optimized,
            "notes": self.notes,
        }


def _fuse(
    src: Path, dst: Path, model_type: str, num_heads: int, hidden_size: int
) -> dict[str, int]:
    import onnx
    import onnxruntime as ort
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import MODEL_TYPES

    model_class = MODEL_TYPES[model_type][0]
    optimizer = model_class(onnx.load(str(src)), num_heads, hidden_size)
    # See the module docstring: this fusion crashes on optimum exports.
    optimizer.fuse_reshape = lambda: None
    optimizer.optimize(FusionOptions(model_type))
    optimizer.topological_sort()
    optimizer.save_model_to_file(str(dst))
    ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])  # must still load
    stats = optimizer.get_fused_operator_statistics()
    return {op: int(count) for op, count in stats.items() if count}


def optimize_encoder(
    src: Path, dst: Path, family: str, num_heads: int, hidden_size: int
) -> OptimizeReport:
    """Write a fused copy of the encoder to ``dst`` (or an unchanged copy if that fails)."""
    report = OptimizeReport()
    report.notes.append(
        "merged decoder not fused offline: ORT's optimizer prunes If subgraphs "
        "(session-level graph optimizations still apply at load)"
    )
    model_type = FUSION_MODEL_TYPE.get(family)
    if model_type is None:
        report.notes.append(f"no ORT fusion set for family {family!r}")
        shutil.copyfile(src, dst)
        return report
    try:
        report.encoder_fusions = _fuse(src, dst, model_type, num_heads, hidden_size)
        report.encoder_optimized = bool(report.encoder_fusions)
        if not report.encoder_optimized:
            report.notes.append("ORT found nothing to fuse in the encoder")
            shutil.copyfile(src, dst)
    except Exception as exc:  # the optimizer is best-effort; the plain export stays valid
        report.notes.append(f"encoder fusion failed, kept unfused: {type(exc).__name__}: {exc}")
        shutil.copyfile(src, dst)
    return report
