"""Packages carrying the positioned decoder (``export_package(positioned=True)``,
``python -m export ... --positioned``): the files, the optional manifest fields, their
validation entry, and that packages without them are written and read as before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from export.errors import UsageError
from service.runtime.manifest import (
    CROSS_KV_FILE,
    MANIFEST_FILE,
    POSITIONED_DECODER_FILE,
    Manifest,
    PackageError,
)
from tests.support.positioned import positioned_package

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def package() -> Path:
    return positioned_package("marian")


def test_both_cpu_variants_carry_the_validated_pair(package: Path) -> None:
    manifest = Manifest.load(package)
    entry = json.loads((package / "validation.json").read_text())["positioned"]
    for precision in ("fp32", "int8"):
        positioned = manifest.variants[precision].positioned
        assert positioned is not None
        assert positioned.decoder.path == f"{precision}/{POSITIONED_DECODER_FILE}"
        assert positioned.cross_kv.path == f"{precision}/{CROSS_KV_FILE}"
        # fp32 must be exact; int8 is marked validated exactly when it reproduced fp32
        # greedy and beam outputs token for token, which near-tie tokens of a tiny model
        # decide differently on different CPUs' int8 kernels (AMX vs VNNI vs AVX2).
        checked = entry[precision]
        exact = checked["greedy_exact"] == 1.0 and checked["beam_exact"] == 1.0
        assert positioned.validated == exact
        assert checked["greedy_token_agreement"] >= 0.9
        paths = manifest.positioned_paths(package, precision)
        assert paths is not None and all(p.is_file() for p in paths)
    assert manifest.variants["fp32"].positioned.validated  # type: ignore[union-attr]
    assert manifest.variants["int8"].positioned is not None
    assert "per-row" in manifest.variants["int8"].positioned.quantization
    manifest.verify_files(package)


def test_validation_entry_records_the_joined_schedule(package: Path) -> None:
    entry = json.loads((package / "validation.json").read_text())["positioned"]
    assert "joins" in entry["schedule"]
    assert entry["fp32"]["greedy_exact"] == 1.0 and entry["fp32"]["validated"]
    assert entry["fp32"]["beam_exact"] == 1.0  # beam search in the positioned batch too
    assert {"greedy_token_agreement", "beam_token_agreement"} <= set(entry["int8"])
    assert entry["fusions"]  # the fused graph was kept (it was exact)
    # Constant Reshape targets in both graphs: shape inference follows the decoder's
    # masked softmax once told that the mask covers the past plus the new step.
    assert entry["static_reshapes"]["cross_kv"] > 0, entry["notes"]
    assert entry["static_reshapes"]["decoder"] > 0, entry["notes"]
    assert not entry["notes"]


def test_a_changed_positioned_file_fails_verification(package: Path, tmp_path: Path) -> None:
    copy = tmp_path / "pkg"
    shutil.copytree(package, copy)
    with open(copy / "int8" / CROSS_KV_FILE, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(PackageError):
        Manifest.load(copy).verify_files(copy)
    from service.runtime import ChecksumMismatchError, load_runtime

    with pytest.raises(ChecksumMismatchError):
        load_runtime(copy, device="cpu", precision="int8", verify=True)


def test_manifests_without_the_pair_keep_their_form() -> None:
    """Committed packages load unchanged and are written back without a ``positioned``
    key (an older reader, whose Variant forbids unknown keys, still reads them)."""
    for folder in sorted((REPO / "models").iterdir()):
        if not (folder / MANIFEST_FILE).is_file():
            continue
        manifest = Manifest.load(folder)
        assert all(v.positioned is None for v in manifest.variants.values())
        assert manifest.positioned_paths(folder, next(iter(manifest.variants))) is None
        raw = json.loads((folder / MANIFEST_FILE).read_text())
        assert all("positioned" not in v for v in raw["variants"].values())


def test_written_manifest_omits_absent_pair(copy_summarizer: Path, tmp_path: Path) -> None:
    """A shipped package without the pair (int8 only, like the committed ones) is written
    back without ``positioned`` keys and reads back equal."""
    manifest = Manifest.load(copy_summarizer)
    assert list(manifest.variants) == ["int8"]
    manifest.write(tmp_path)
    raw = json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert all("positioned" not in v for v in raw["variants"].values())
    assert Manifest.load(tmp_path) == manifest


def test_int8_pair_uses_the_merged_int8_recipe(package: Path) -> None:
    """Both int8 decoders of a package quantize alike: the positioned pair takes the recipe
    the pipeline kept for the merged decoder (e.g. the output projection left in fp32)."""
    from export.pipeline import INT8_CANDIDATES
    from export.positioned_package import int8_options_for

    manifest = Manifest.load(package)
    int8 = manifest.variants["int8"]
    assert int8.positioned is not None and int8.positioned.quantization == int8.quantization
    for options in INT8_CANDIDATES:
        changed = int8.model_copy(update={"quantization": options.label})
        variants = {**manifest.variants, "int8": changed}
        assert int8_options_for(manifest.model_copy(update={"variants": variants})) == options
    fp32_only = manifest.model_copy(update={"variants": {"fp32": manifest.variants["fp32"]}})
    assert int8_options_for(fp32_only) == INT8_CANDIDATES[0]


def test_unsupported_family_is_a_usage_error() -> None:
    from export.positioned_package import check_positioned_family

    with pytest.raises(UsageError, match="no positioned decoder for family 'mbart'"):
        check_positioned_family("mbart")
    check_positioned_family("m2m100")


def test_cli_flag() -> None:
    from export.__main__ import build_parser

    args = ["ckpt", "--task", "translation", "--name", "n", "--out-dir", "o"]
    assert build_parser().parse_args([*args, "--positioned"]).positioned
    assert not build_parser().parse_args(args).positioned
