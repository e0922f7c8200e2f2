"""python -m export.shrink: a package exported with fp32 token embeddings in its int8
variant (as before export.int8_embeddings) is rewritten in place, checked against itself,
and its manifest and validation.json follow; below the agreement bound nothing changes."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto

from export.errors import UsageError, ValidationFailedError
from export.int8_embeddings import EmbeddingReport
from export.quantize import EMBEDDINGS_LABEL
from export.shrink import MIN_AGREEMENT, main, shrink_package
from service.runtime import GenerationOptions, load_runtime
from service.runtime.manifest import Manifest
from tests.support.positioned import TASKS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def old_package(
    tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Callable[[str], Path]
) -> Path:
    """Tiny Marian exported (with the positioned pair) the way packages were before the
    int8 embeddings: the embedding pass turned off."""
    from export.pipeline import export_package

    out = tmp_path_factory.mktemp("old")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            "export.quantize.quantize_embeddings_file", lambda src, dst: EmbeddingReport()
        )
        return export_package(
            tiny_checkpoint("marian"),
            task=TASKS["marian"],
            name="old-marian",
            out_dir=out,
            validate=False,
            positioned=True,
        )


def _copy(package: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(package, tmp_path / package.name))


def _vocab_tables(path: Path, vocab: int) -> list[tuple[int, list[int]]]:
    from service.runtime.int8_weights import iter_graphs

    model = onnx.load(str(path))
    return [
        (init.data_type, list(init.dims))
        for graph in iter_graphs(model.graph)
        for init in graph.initializer
        if len(init.dims) == 2 and vocab in init.dims and min(init.dims) > 1
    ]


def test_the_int8_files_shrink_in_place_and_the_package_records_it(
    old_package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = _copy(old_package, tmp_path)
    before = Manifest.load(package)
    vocab = before.model.vocab_size
    encoder, decoder = before.variant_paths(package, "int8")
    assert TensorProto.FLOAT in {t for t, _ in _vocab_tables(encoder, vocab)}
    assert len(_vocab_tables(decoder, vocab)) == 2  # fp32 table + int8 lm_head

    assert main([str(package)]) == 0
    printed = capsys.readouterr().out
    assert "merged: greedy_exact=" in printed and "positioned: greedy_exact=" in printed

    manifest = Manifest.load(package)
    manifest.verify_files(package)  # new sizes and sha256
    variant = manifest.variants["int8"]
    assert variant.quantization.endswith(EMBEDDINGS_LABEL)
    assert variant.positioned is not None
    assert variant.positioned.quantization.endswith(EMBEDDINGS_LABEL)
    assert variant.encoder.bytes < before.variants["int8"].encoder.bytes
    assert variant.decoder.bytes < before.variants["int8"].decoder.bytes
    assert manifest.variants["fp32"] == before.variants["fp32"]
    # One int8 table per file; the decoder's lm_head reads it.
    assert _vocab_tables(encoder, vocab) == [(TensorProto.UINT8, [vocab, before.model.d_model])]
    assert _vocab_tables(decoder, vocab) == [(TensorProto.UINT8, [vocab, before.model.d_model])]
    positioned = manifest.positioned_paths(package, "int8")
    assert positioned is not None
    assert len(_vocab_tables(positioned[0], vocab)) == 1

    validation = json.loads((package / "validation.json").read_text())
    entry = validation["precisions"]["int8"]["embeddings"]
    assert entry["bytes_after"] < entry["bytes_before"]
    assert entry["greedy_token_agreement"] >= MIN_AGREEMENT
    assert entry["beam_token_agreement"] >= MIN_AGREEMENT
    assert entry["files"]["int8/decoder_model_merged.onnx"]["tied_lm_heads"] == 1
    assert validation["positioned"]["int8"]["embeddings"]["greedy_token_agreement"] >= MIN_AGREEMENT
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch left

    runtime = load_runtime(package, device="cpu", precision="int8", positioned=True)
    ids = runtime.encode_texts(["A man rides a horse."])
    assert runtime.generate(ids, GenerationOptions(max_new_tokens=8))[0][0]

    result = shrink_package(package)  # a second run finds nothing to do
    assert not result.changed and result.bytes_before == result.bytes_after
    assert Manifest.load(package) == manifest


def test_below_the_agreement_bound_the_package_is_unchanged(
    old_package: Path, tmp_path: Path
) -> None:
    package = _copy(old_package, tmp_path)
    files = {p: p.read_bytes() for p in package.rglob("*") if p.is_file()}
    with pytest.raises(ValidationFailedError, match="is unchanged"):
        shrink_package(package, min_agreement=1.01)  # even identical outputs fall short
    assert {p: p.read_bytes() for p in package.rglob("*") if p.is_file()} == files
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_package_without_int8_or_with_changed_files_is_refused(
    old_package: Path, tmp_path: Path
) -> None:
    package = _copy(old_package, tmp_path)
    manifest = Manifest.load(package)
    fp32_only = manifest.model_copy(update={"variants": {"fp32": manifest.variants["fp32"]}})
    fp32_only.write(package)
    with pytest.raises(UsageError, match="no int8 variant"):
        shrink_package(package)
    manifest.write(package)
    encoder, _ = manifest.variant_paths(package, "int8")
    encoder.write_bytes(encoder.read_bytes() + b"\0")
    with pytest.raises(UsageError, match="differs from manifest"):
        shrink_package(package)
