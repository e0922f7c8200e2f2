"""The package format: manifest schema round trip, validation and file verification."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.runtime.manifest import (
    ChatConfig,
    GenerationDefaults,
    Languages,
    Manifest,
    ModelInfo,
    PackageError,
    SourceInfo,
    TokenizerInfo,
    Variant,
    file_entry,
)


def _package(root: Path, task: str = "translation") -> Manifest:
    """A manifest over real (small, fake-content) files in ``root``."""
    for rel in ("fp32/encoder_model.onnx", "fp32/decoder_model_merged.onnx", "tokenizer/a.json"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(rel.encode() * 3)
    variant = Variant(
        encoder=file_entry(root / "fp32/encoder_model.onnx", root),
        decoder=file_entry(root / "fp32/decoder_model_merged.onnx", root),
        device="cpu",
        validated=True,
    )
    return Manifest(
        name="tiny-m2m",
        task=task,  # type: ignore[arg-type]
        family="m2m100",
        source=SourceInfo(ref="/ckpt", sha256="ab" * 32, kind="local"),
        languages=Languages(source=["en", "de"], target=["en", "de"], tokens={"de": "__de__"}),
        task_prefix="translate: ",
        chat=ChatConfig() if task == "chat" else None,
        model=ModelInfo(
            vocab_size=128,
            d_model=16,
            num_decoder_layers=2,
            num_heads=2,
            head_dim=8,
            decoder_start_token_id=2,
            pad_token_id=1,
            eos_token_id=2,
            max_source_positions=64,
        ),
        generation=GenerationDefaults.from_dict(
            {"num_beams": 4, "max_length": 50, "early_stopping": True, "unknown_field": 1}
        ),
        tokenizer=TokenizerInfo(files=[file_entry(root / "tokenizer/a.json", root)]),
        variants={"fp32": variant},
        tools={"onnxruntime": "1.0"},
    )


def test_round_trip_is_lossless(tmp_path: Path) -> None:
    manifest = _package(tmp_path)
    manifest.write(tmp_path)
    loaded = Manifest.load(tmp_path)
    assert loaded == manifest
    assert loaded.generation.num_beams == 4
    assert loaded.generation.length_penalty is None  # unset: transformers' default
    assert loaded.languages.multilingual
    encoder, decoder = loaded.variant_paths(tmp_path, "fp32")
    assert encoder == tmp_path / "fp32" / "encoder_model.onnx"
    assert decoder.is_file()
    loaded.verify_files(tmp_path)
    assert json.loads((tmp_path / "manifest.json").read_text())["format_version"] == 1


def test_chat_round_trip(tmp_path: Path) -> None:
    manifest = _package(tmp_path, task="chat")
    manifest.write(tmp_path)
    assert Manifest.load(tmp_path).chat == ChatConfig()


def test_verify_files_detects_changed_weights(tmp_path: Path) -> None:
    manifest = _package(tmp_path)
    (tmp_path / "fp32/decoder_model_merged.onnx").write_bytes(b"tampered")
    with pytest.raises(PackageError, match="sha256"):
        manifest.verify_files(tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format_version": 2}, "format_version"),
        ({"task": "poetry"}, "invalid manifest"),
        ({"surprise": 1}, "invalid manifest"),
        ({"variants": {}}, "at least one"),
        ({"chat": None, "task": "chat"}, "chat"),
    ],
)
def test_load_rejects_bad_manifests(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    data = _package(tmp_path).model_dump(mode="json")
    data.update(change)
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(PackageError, match=message):
        Manifest.load(tmp_path)


def test_load_rejects_unknown_precision(tmp_path: Path) -> None:
    data = _package(tmp_path).model_dump(mode="json")
    data["variants"]["int3"] = data["variants"]["fp32"]
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(PackageError, match="int3"):
        Manifest.load(tmp_path)


def test_missing_and_unreadable_manifest(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="not a model package"):
        Manifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(PackageError, match="unreadable"):
        Manifest.load(tmp_path)


def test_missing_variant_is_a_package_error(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="no 'int8' variant"):
        _package(tmp_path).variant_paths(tmp_path, "int8")
