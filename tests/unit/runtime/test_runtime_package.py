"""Loading: provider/precision reported, bad packages and inputs raise the typed errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from service.runtime import (
    GenerationOptions,
    PackageError,
    RuntimeInputError,
    Seq2SeqRuntime,
    load_runtime,
)

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def marian_package(tiny_package: Callable[..., Path]) -> Path:
    return tiny_package("marian")


def test_auto_picks_int8_on_cpu_and_reports_it(marian_package: Path) -> None:
    rt = load_runtime(marian_package, intra_op_threads=1)
    assert rt.info.precision == "int8"
    assert rt.info.provider == "CPUExecutionProvider"
    assert rt.info.device == "cpu" and rt.info.intra_op_threads == 1
    out = rt.generate_texts(["A man rides a horse."], GenerationOptions(max_new_tokens=8))
    assert len(out) == 1 and isinstance(out[0][0], str)


def test_fp16_on_cpu_only_package_is_a_package_error(marian_package: Path) -> None:
    with pytest.raises(PackageError):
        load_runtime(marian_package, precision="fp16")


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "pkg"
    shutil.copytree(src, dst)
    return dst


def test_missing_package_dir(tmp_path: Path) -> None:
    with pytest.raises(PackageError):
        load_runtime(tmp_path / "nope")


@pytest.mark.parametrize(
    "damage", ["delete_decoder", "garbage_encoder", "bad_manifest", "no_tokenizer"]
)
def test_damaged_package_is_a_package_error(
    marian_package: Path, tmp_path: Path, damage: str
) -> None:
    pkg = _copy(marian_package, tmp_path)
    manifest = json.loads((pkg / "manifest.json").read_text())
    variant = manifest["variants"]["fp32"]
    if damage == "delete_decoder":
        (pkg / variant["decoder"]["path"]).unlink()
    elif damage == "garbage_encoder":
        (pkg / variant["encoder"]["path"]).write_bytes(b"not an onnx model")
    elif damage == "bad_manifest":
        (pkg / "manifest.json").write_text("{ not json")
    else:
        shutil.rmtree(pkg / manifest["tokenizer"]["dir"])
    with pytest.raises(PackageError):
        load_runtime(pkg, precision="fp32")


def test_verify_detects_modified_file(marian_package: Path, tmp_path: Path) -> None:
    pkg = _copy(marian_package, tmp_path)
    manifest = json.loads((pkg / "manifest.json").read_text())
    decoder = pkg / manifest["variants"]["fp32"]["decoder"]["path"]
    decoder.write_bytes(decoder.read_bytes() + b"\0")
    with pytest.raises(PackageError):
        load_runtime(pkg, precision="fp32", verify=True)


def test_too_long_input_is_rejected_not_truncated(
    fp32_runtime: Callable[[str], Seq2SeqRuntime],
) -> None:
    rt = fp32_runtime("marian")
    limit = rt.manifest.model.max_source_positions
    assert limit is not None
    with pytest.raises(RuntimeInputError):
        rt.encode_texts(["A man rides a horse. " * limit])
    batch = rt.new_batch()
    with pytest.raises(RuntimeInputError):
        batch.add("x", [5] * (limit + 1), rt.resolve())
    assert len(batch) == 0


def test_unknown_language_is_an_input_error(fp32_runtime: Callable[[str], Seq2SeqRuntime]) -> None:
    rt = fp32_runtime("m2m100")
    with pytest.raises(RuntimeInputError):
        rt.resolve(GenerationOptions(), target_lang="xx-unknown")
    with pytest.raises(RuntimeInputError):
        rt.encode_texts(["Hello"], source_lang="xx-unknown")


def test_serving_path_never_imports_torch(marian_package: Path) -> None:
    """Load + generate in a fresh process that behaves like the torch-free serving install."""
    code = textwrap.dedent(
        f"""
        import json, sys
        from service.runtime.notorch import block_torch, torch_loaded
        assert block_torch()
        from service.runtime import GenerationOptions, load_runtime
        rt = load_runtime({str(marian_package)!r})
        greedy = rt.generate_texts(["A man rides a horse."], GenerationOptions(max_new_tokens=8))
        opts = GenerationOptions(num_beams=3, max_new_tokens=8)
        beams = rt.generate(rt.encode_texts(["Two dogs."]), opts)
        mods = [m for m in sys.modules if m.startswith("torch")]
        report = {{"torch": torch_loaded(), "mods": mods, "greedy": greedy, "beams": beams}}
        print(json.dumps(report))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["torch"] is False
    assert report["mods"] == ["torch"]  # only the blocking placeholder (None), nothing loaded
    assert report["greedy"][0][0] and report["beams"][0][0]
