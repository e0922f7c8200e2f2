"""Stage 3 (CUDA): fp16 conversion with fp32 inputs/outputs and fp32 islands where needed.

The converter cannot be run on the merged decoder: with kept fp32 outputs it renames the
``If`` branches' outputs into outer-scope values and ONNX Runtime rejects the model. So the
two unmerged decoders (without / with past) are converted separately and merged again
with optimum's ``merge_decoders``, exactly as the export merges the fp32 ones.
"""

from __future__ import annotations

from pathlib import Path

from export.errors import ConversionError
from export.onnx_export import OnnxPair, UnmergedDecoders, merge_into
from export.quantize import lm_head_nodes
from service.runtime.manifest import DECODER_FILE, ENCODER_FILE

# T5's residual stream and RMSNorm overflow fp16 (activations grow past 65504), so
# those ops stay fp32, like onnxruntime's own T5 mixed-precision recipe.
T5_FP32_OPS = ["Pow", "ReduceMean", "Sqrt", "Reciprocal", "Div", "Add", "Relu", "Softmax"]


def convert_file(src: Path, dst: Path, family: str) -> None:
    """Convert one fp32 ONNX graph (no subgraphs) to fp16 keeping fp32 IO and lm_head."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    op_block_list = list(DEFAULT_OP_BLOCK_LIST)
    if family == "t5":
        op_block_list += T5_FP32_OPS
    try:
        converted = convert_float_to_float16(
            onnx.load(str(src)),
            keep_io_types=True,
            op_block_list=op_block_list,
            # Logits decide the argmax; an fp32 projection keeps near-ties stable.
            node_block_list=lm_head_nodes(src),
        )
        # The converter appends the IO casts at the end of the node list.
        model = OnnxModel(converted)
        model.topological_sort()
        onnx.save(model.model, str(dst))
    except Exception as exc:  # the converter raises assorted errors on odd graphs
        raise ConversionError(f"fp16 conversion of {src.name} failed: {exc}") from exc


def convert_pair(
    fp32_encoder: Path, unmerged: UnmergedDecoders, dst_dir: Path, family: str
) -> OnnxPair:
    """Write ``dst_dir/encoder_model.onnx`` and a merged fp16 decoder."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    out = OnnxPair(encoder=dst_dir / ENCODER_FILE, decoder=dst_dir / DECODER_FILE)
    convert_file(fp32_encoder, out.encoder, family)
    scratch = dst_dir / ".unmerged"
    scratch.mkdir()
    first, with_past = scratch / unmerged.first.name, scratch / unmerged.with_past.name
    convert_file(unmerged.first, first, family)
    convert_file(unmerged.with_past, with_past, family)
    merge_into(UnmergedDecoders(first, with_past), out.decoder)
    for path in (first, with_past):
        path.unlink()
    scratch.rmdir()
    return out
