"""service.runtime.int8_weights: per-row uint8 weights re-encoded as int8 on VNNI CPUs
give the same numbers and the same tokens, and nothing else is touched."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.int8_per_row import quantize_per_row
from service.runtime import GenerationOptions, load_runtime
from service.runtime.int8_weights import cpu_flags, cpu_has_vnni, signed_weights
from service.runtime.model_source import load_bytes, model_source
from tests.support.matmul_graph import K, save_matmul_model
from tests.support.positioned import SENTENCES, positioned_package

needs_vnni = pytest.mark.skipif(
    not cpu_has_vnni(),
    reason="this CPU has no VNNI: its u8 x s8 kernel saturates, so signed weights stay off",
)


def _per_row(tmp_path: Path) -> Path:
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    save_matmul_model(fp32)
    assert quantize_per_row(fp32, int8) == 3
    return int8


def _run(model: str | bytes, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return [np.asarray(out) for out in session.run(None, {"x": x})]


def _signed(path: Path) -> Any:
    """``path``'s model with its weights re-encoded, or None when none were."""
    model = onnx.load(str(path))
    return model if signed_weights(model) else None


def _initializers(model: Any) -> dict[str, np.ndarray]:
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def test_cpu_flags_come_from_the_flags_line(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n")
    flags = cpu_flags(cpuinfo)
    assert {"avx2", "avx512_vnni"} <= flags
    assert cpu_has_vnni(flags)
    assert cpu_has_vnni(frozenset({"avx2", "avx_vnni"}))
    assert not cpu_has_vnni(frozenset({"avx2", "fma"}))
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_weights_become_int8_minus_the_zero_point(tmp_path: Path) -> None:
    int8 = _per_row(tmp_path)
    before = _initializers(onnx.load(str(int8)))
    model = _signed(int8)
    assert model is not None
    after = _initializers(model)
    weights = [
        name for name, value in before.items() if value.dtype == np.uint8 and value.ndim == 2
    ]
    assert len(weights) == 2  # w1 (shared by two MatMuls) and w2
    for name in weights:
        assert after[name].dtype == np.int8
        np.testing.assert_array_equal(
            after[name].astype(np.int16), before[name].astype(np.int16) - 128
        )
    per_row = [node for node in model.graph.node if node.op_type == "MatMulIntegerToFloat"]
    assert len(per_row) == 3
    assert all(node.input[5] == "" for node in per_row)  # int8 weights have zero point 0
    assert all(node.input[4] == "pr_zp" for node in per_row)  # activations stay uint8


def test_a_weight_read_by_another_op_is_left_alone(tmp_path: Path) -> None:
    int8 = _per_row(tmp_path)
    model = onnx.load(str(int8))
    weight = next(
        node.input[1] for node in model.graph.node if node.op_type == "MatMulIntegerToFloat"
    )
    model.graph.node.append(helper.make_node("Cast", [weight], ["w_float"], to=TensorProto.FLOAT))
    model.graph.output.append(helper.make_tensor_value_info("w_float", TensorProto.FLOAT, None))
    shared = tmp_path / "shared.onnx"
    onnx.save(model, shared)
    converted = _signed(shared)
    assert converted is not None  # the other weight is still re-encoded
    after = _initializers(converted)
    assert after[weight].dtype == np.uint8


def test_models_without_per_row_weights_and_other_devices_load_as_they_are(
    tmp_path: Path,
) -> None:
    fp32 = tmp_path / "plain.onnx"
    save_matmul_model(fp32)
    assert _signed(fp32) is None
    assert load_bytes(fp32, "auto", "cpu") is None
    int8 = _per_row(tmp_path)
    assert load_bytes(int8, "as_exported", "cpu") is None
    assert load_bytes(int8, "auto", "cuda") is None


@needs_vnni
def test_signed_weights_give_the_same_numbers(tmp_path: Path) -> None:
    int8 = _per_row(tmp_path)
    converted = load_bytes(int8, "auto", "cpu")
    assert converted is not None
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 7, K), dtype=np.float32)
    x[2] *= 40.0  # full-range activations: where a saturating kernel would clip
    for exported, signed in zip(_run(str(int8), x), _run(converted, x), strict=True):
        np.testing.assert_array_equal(exported, signed)


def test_model_source_is_the_file_itself_when_nothing_is_re_encoded(tmp_path: Path) -> None:
    int8 = _per_row(tmp_path)
    with model_source(int8, "as_exported", "cpu") as source:
        assert source == str(int8)
    assert int8.is_file()


@needs_vnni
def test_model_source_re_encoded_is_a_temporary_file_removed_after_loading(
    tmp_path: Path,
) -> None:
    int8 = _per_row(tmp_path)
    with model_source(int8, "auto", "cpu") as source:
        assert isinstance(source, str)
        copy = Path(source)
        assert copy != int8 and copy.read_bytes() == load_bytes(int8, "auto", "cpu")
        x = np.random.default_rng(5).standard_normal((2, 3, K), dtype=np.float32)
        for exported, signed in zip(_run(str(int8), x), _run(source, x), strict=True):
            np.testing.assert_array_equal(exported, signed)
    assert not copy.exists()


@needs_vnni
def test_model_source_without_a_writable_temporary_dir_is_the_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    int8 = _per_row(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    with model_source(int8, "auto", "cpu") as source:
        assert source == load_bytes(int8, "auto", "cpu")


@needs_vnni
def test_a_real_package_gives_the_same_tokens_both_ways() -> None:
    package = positioned_package("marian")
    rt = load_runtime(package, device="cpu", precision="int8", intra_op_threads=1)
    for path in rt.manifest.variant_paths(package, "int8"):
        assert load_bytes(path, "auto", "cpu") is not None  # "auto" does re-encode here
    tokens = {}
    for weights in ("as_exported", "auto"):
        rt = load_runtime(
            package, device="cpu", precision="int8", intra_op_threads=1, int8_weights=weights
        )
        ids = rt.encode_texts(SENTENCES)
        tokens[weights] = [
            rt.generate(ids, rt.resolve(GenerationOptions(num_beams=beams, max_new_tokens=24)))
            for beams in (1, 3)
        ]
    assert tokens["auto"] == tokens["as_exported"]
    assert len({tuple(seq[0]) for seq in tokens["auto"][0]}) > 1  # input-dependent outputs
