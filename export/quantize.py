"""Stage 3 (CPU): int8 quantization of the fp32 encoder and merged decoder.

Three methods: per-row int8 (the pipeline's; ``export.int8_per_row``: one activation
scale per row, computed in the graph; token embeddings int8 with one scale per token and
a tied lm_head stored once, ``export.int8_embeddings``), ORT dynamic quantization (int8
weights and int8 activations, with one activation scale computed per tensor at run time)
and weight-only int8 (MatMulNBits: int8 weights with symmetric per-block scales,
activations stay float).
Dynamic quantization's activation scale spans the whole batch, padding rows included, so a
request's output depends on its batch neighbours; the other two have no such coupling."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from export.errors import ConversionError
from export.int8_embeddings import quantize_embeddings_file
from export.int8_per_row import quantize_per_row
from export.onnx_export import OnnxPair, UnmergedDecoders, merge_into
from service.runtime.int8_weights import iter_graphs
from service.runtime.manifest import DECODER_FILE, ENCODER_FILE

Int8Method = Literal["dynamic", "weight_only", "per_row"]
# What export.int8_embeddings does, as the per-row label says it.
EMBEDDINGS_LABEL = "per-row int8 token embeddings (stored once with a tied lm_head)"


@dataclass(frozen=True)
class Int8Options:
    """One int8 recipe; the pipeline measures candidates and keeps the best."""

    per_channel: bool = True
    lm_head_fp32: bool = False
    # per_row: token embeddings as per-row int8 too (export.int8_embeddings).
    int8_embeddings: bool = True
    method: Int8Method = "dynamic"
    # weight_only: each block of this many weights along the input dimension shares one
    # scale. 128 rather than 32: on ORT 1.32 / AVX-512 CPUs it was 15-20% faster at batch 16
    # on full-size Marian with the same outputs (docs/export.md, "int8 method").
    block_size: int = 128
    # weight_only: the MatMulNBits compute type; 4 = int8 x int8 kernels (activations
    # quantized per block inside the op, per row, so rows of a batch never share a scale).
    accuracy_level: int = 4

    @property
    def label(self) -> str:
        """Short description stored as the variant's ``quantization``."""
        head = ", lm_head fp32" if self.lm_head_fp32 else ""
        if self.method == "weight_only":
            return (
                f"weight-only int8 MatMul weights (MatMulNBits, symmetric, "
                f"block {self.block_size}, accuracy_level {self.accuracy_level}{head})"
            )
        if self.method == "per_row":
            return (
                "per-row int8 activations x per-column int8 MatMul weights "
                f"(MatMulIntegerToFloat{head})"
                + (f", {EMBEDDINGS_LABEL}" if self.int8_embeddings else "")
            )
        scales = "per-channel" if self.per_channel else "per-tensor"
        return f"dynamic int8 MatMul weights ({scales}{head})"


def lm_head_nodes(model_path: Path) -> list[str]:
    """Names of the MatMul nodes that produce the logits (one per decoder branch)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    names: list[str] = []
    for graph in iter_graphs(model.graph):
        producers = {out: node for node in graph.node for out in node.output}
        initializers = {init.name for init in graph.initializer}
        for output in graph.output:
            if not output.name.startswith("logits"):
                continue
            node = producers.get(output.name)
            # Walk back over bias adds / casts / identities to the projection MatMul.
            while node is not None and node.op_type != "MatMul":
                if node.op_type not in ("Add", "Identity", "Cast"):
                    node = None
                    break
                parents = [i for i in node.input if i in producers and i not in initializers]
                node = producers[parents[0]] if parents else None
            if node is not None and node.name:
                names.append(node.name)
    return names


def quantize_file(src: Path, dst: Path, options: Int8Options, embeddings: bool = True) -> None:
    """Quantize one ONNX file's MatMul weights to int8 (subgraphs included); per-row int8
    with ``options.int8_embeddings`` also stores token embeddings as per-row int8
    (``export.int8_embeddings``) unless ``embeddings`` is False (done after merging)."""
    exclude = lm_head_nodes(src) if options.lm_head_fp32 else []
    try:
        if options.method == "weight_only":
            _quantize_weight_only(src, dst, options, exclude)
        elif options.method == "per_row":
            quantize_per_row(src, dst, set(exclude))
            if embeddings and options.int8_embeddings:
                quantize_embeddings_file(dst, dst)
        else:
            _quantize_dynamic(src, dst, options, exclude)
    except Exception as exc:  # ORT and onnx raise plain Exceptions for unsupported graphs
        raise ConversionError(f"int8 quantization of {src.name} failed: {exc}") from exc


def _quantize_weight_only(src: Path, dst: Path, options: Int8Options, exclude: list[str]) -> None:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    # The quantizer logs one INFO line per node.
    quiet = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        model = onnx.load(str(src))
        quantizer = MatMulNBitsQuantizer(
            model,
            bits=8,
            block_size=options.block_size,
            is_symmetric=True,
            accuracy_level=options.accuracy_level,
            nodes_to_exclude=exclude,
        )
        quantizer.process()
        out = quantizer.model.model if hasattr(quantizer.model, "model") else quantizer.model
        # Large models (> 2 GB protobuf limit) are not exported by this project's families.
        onnx.save(out, str(dst))
    finally:
        quiet.setLevel(level)


def _quantize_dynamic(src: Path, dst: Path, options: Int8Options, exclude: list[str]) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root_logger = logging.getLogger()
    level = root_logger.level
    # ORT logs a "consider pre-processing" warning on the root logger for every file.
    root_logger.setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            str(src),
            str(dst),
            op_types_to_quantize=["MatMul"],
            per_channel=options.per_channel,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude,
            # The merged decoder keeps its weights inside If subgraphs: without this,
            # nothing there is quantized.
            # DefaultTensorType: fused contrib ops (BiasGelu, SkipLayerNormalization) have
            # no ONNX type inference; their outputs are float.
            extra_options={"EnableSubgraph": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root_logger.setLevel(level)


def quantize_pair(
    encoder: Path, unmerged: UnmergedDecoders, dst_dir: Path, options: Int8Options
) -> OnnxPair:
    """Quantize the encoder and both unmerged decoders, then merge the decoders, into
    ``dst_dir``. Quantizing the merged decoder directly also works for the plain export
    (with EnableSubgraph), but on fused graphs it yields a decoder ONNX Runtime refuses to
    load (a Cast in the If branches loses its type); merging afterwards avoids that."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    out = OnnxPair(encoder=dst_dir / ENCODER_FILE, decoder=dst_dir / DECODER_FILE)
    quantize_file(
        encoder,
        out.encoder,
        dataclasses.replace(options, lm_head_fp32=False),  # the encoder has no lm_head
    )
    scratch = dst_dir / ".unmerged"
    scratch.mkdir()
    quantized = UnmergedDecoders(
        first=scratch / unmerged.first.name, with_past=scratch / unmerged.with_past.name
    )
    quantize_file(unmerged.first, quantized.first, options, embeddings=False)
    quantize_file(unmerged.with_past, quantized.with_past, options, embeddings=False)
    merge_into(quantized, out.decoder)
    shutil.rmtree(scratch)
    if options.method == "per_row" and options.int8_embeddings:
        try:
            quantize_embeddings_file(out.decoder, out.decoder)
        except Exception as exc:  # onnx raises plain Exceptions for graphs it cannot read
            raise ConversionError(f"int8 embeddings of {out.decoder.name} failed: {exc}") from exc
    return out
