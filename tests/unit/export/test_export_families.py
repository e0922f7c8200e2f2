"""Every family exports to a package that reproduces transformers generate() exactly (fp32).

Packages come from the session-cached ``tiny_package`` fixture (built once, reused).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
import pytest

from export.pipeline import INT8_CANDIDATES
from export.quantize import EMBEDDINGS_LABEL, iter_graphs
from service.runtime.manifest import Manifest

FAMILIES = ("marian", "bart", "t5", "pegasus", "blenderbot", "m2m100")

pytestmark = pytest.mark.slow


def _validation(package: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((package / "validation.json").read_text())
    return data


def _vocab_tables(path: Path, vocab: int) -> list[int]:
    """Element types of the vocabulary-sized matrices (embedding tables, lm_head weights)."""
    model = onnx.load(str(path))
    return [
        init.data_type
        for graph in iter_graphs(model.graph)
        for init in graph.initializer
        if len(init.dims) == 2 and vocab in init.dims and min(init.dims) > 1
    ]


def _op_count(path: Path, op_type: str) -> int:
    model = onnx.load(str(path))
    return sum(node.op_type == op_type for graph in iter_graphs(model.graph) for node in graph.node)


@pytest.mark.parametrize("family", FAMILIES)
def test_fp32_is_token_exact_and_int8_is_measured(
    family: str, tiny_package: Callable[..., Path], tiny_checkpoint: Callable[[str], Path]
) -> None:
    package = tiny_package(family)
    manifest = Manifest.load(package)
    manifest.verify_files(package)
    checkpoint_config = json.loads((tiny_checkpoint(family) / "config.json").read_text())
    assert manifest.family == family
    assert manifest.model.vocab_size == checkpoint_config["vocab_size"]
    assert set(manifest.variants) == {"fp32", "int8"}

    validation = _validation(package)
    assert validation["runner"] == "service.runtime"
    fp32 = validation["precisions"]["fp32"]
    assert fp32["greedy_exact"] == 1.0, fp32["samples"]
    assert fp32["beam_exact"] == 1.0, fp32["mismatches"]
    assert fp32["first_step_max_abs_logit_diff"] < 1e-3
    assert fp32["inputs_identical"] is True
    assert manifest.variants["fp32"].validated
    # The optimized graphs were kept (they were exact), Reshape targets constant in all three.
    optimization = validation["optimization"]
    assert optimization["decoder_optimized"], optimization["notes"]
    static = optimization["static_reshapes"]
    assert set(static) == {"encoder", "decoder", "decoder_with_past"}, optimization["notes"]
    assert min(static.values()) > 0, static

    int8 = validation["precisions"]["int8"]
    assert manifest.variants["int8"].validated
    assert 0.0 <= int8["greedy_exact"] <= 1.0 and 0.0 <= int8["beam_exact"] <= 1.0
    # Less quantized recipes are only tried while none so far is exact.
    exact = [c["greedy_exact"] == c["beam_exact"] == 1.0 for c in int8["candidates"]]
    assert len(exact) == (exact.index(True) + 1 if True in exact else len(INT8_CANDIDATES))
    # int8 really changed the model: quantized MatMuls in the decoder's If branches, and
    # logits that are no longer bit-identical to fp32.
    _, int8_decoder = manifest.variant_paths(package, "int8")
    assert _op_count(int8_decoder, "MatMulIntegerToFloat") > 0  # per-row int8
    # No batch-coupled dynamic int8 (one activation scale for the whole tensor).
    assert _op_count(int8_decoder, "DynamicQuantizeLinear") == 0
    assert int8["first_step_max_abs_logit_diff"] > fp32["first_step_max_abs_logit_diff"]
    # With int8 token embeddings (per-row scales) both files hold one int8 table, the
    # decoder's shared with its tied lm_head (all tiny checkpoints tie them), or, with the
    # lm_head kept fp32, one fp32 table; without, an fp32 table (+ the int8 lm_head).
    int8_encoder, _ = manifest.variant_paths(package, "int8")
    vocab = manifest.model.vocab_size
    u8, f32 = onnx.TensorProto.UINT8, onnx.TensorProto.FLOAT
    label = int8["quantization"]
    if EMBEDDINGS_LABEL not in label:
        assert _vocab_tables(int8_encoder, vocab) == [f32]
        assert sorted(_vocab_tables(int8_decoder, vocab)) == sorted([f32, u8])
    else:
        assert _vocab_tables(int8_encoder, vocab) == [u8]
        assert _vocab_tables(int8_decoder, vocab) == [f32 if "lm_head fp32" in label else u8]
    print(
        f"{family} int8: greedy_exact={int8['greedy_exact']:.3f} "
        f"beam_exact={int8['beam_exact']:.3f} "
        f"token_agreement={int8['greedy_token_agreement']:.3f} ({int8['quantization']})"
    )


def test_t5_task_prefix_comes_from_task_specific_params(
    tiny_package: Callable[..., Path], tiny_checkpoint: Callable[[str], Path]
) -> None:
    config = json.loads((tiny_checkpoint("t5") / "config.json").read_text())
    params = config.get("task_specific_params") or {}
    translation = [v["prefix"] for k, v in params.items() if k.startswith("translation")]
    if not translation:
        pytest.skip("tiny T5 checkpoint has no translation task_specific_params")
    assert Manifest.load(tiny_package("t5")).task_prefix in translation


def test_m2m100_language_tokens(tiny_package: Callable[..., Path]) -> None:
    package = tiny_package("m2m100")
    manifest = Manifest.load(package)
    tokens = manifest.languages.tokens
    assert tokens["de"] == "__de__" and tokens["en"] == "__en__"
    inputs = _validation(package)["inputs"]
    assert inputs["source_lang"] == "en" and inputs["target_lang"] in tokens


def test_blenderbot_chat_section(tiny_package: Callable[..., Path]) -> None:
    manifest = Manifest.load(tiny_package("blenderbot"))
    assert manifest.task == "chat"
    assert manifest.chat is not None and manifest.chat.turn_separator == "  "


def test_fp16_is_built_but_never_marked_validated_without_gpu(
    tiny_package: Callable[..., Path],
) -> None:
    import onnxruntime as ort

    package = tiny_package("marian", ("fp32", "fp16"))
    manifest = Manifest.load(package)
    fp16 = manifest.variants["fp16"]
    assert fp16.device == "cuda"
    entry = _validation(package)["precisions"]["fp16"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert fp16.validated is False
        assert entry["validated"] is False and "CUDA" in entry["reason"]
        assert entry["cpu_logits_finite"] is True  # the fp16 graph does not overflow
    encoder, decoder = manifest.variant_paths(package, "fp16")
    assert _op_count(decoder, "If") == 1  # still optimum's merged decoder
    session = ort.InferenceSession(str(decoder), providers=["CPUExecutionProvider"])
    float_io = [
        io.type for io in [*session.get_inputs(), *session.get_outputs()] if "float" in io.type
    ]
    assert float_io and set(float_io) == {"tensor(float)"}  # IO stays fp32
    weights = onnx.load(str(encoder)).graph.initializer
    assert any(w.data_type == onnx.TensorProto.FLOAT16 for w in weights)
