"""Package integrity and load failures (findings 5, 6, 7): a corrupt package is refused,
every load failure is logged once with its reason, public reasons carry no server
paths, and the readiness policy decides whether one broken package makes /ready 503."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest

from service.engine import EngineObserver, LoadConfig, ModelEntry, ModelRegistry
from service.runtime import Manifest
from service.runtime.int8_weights import iter_graphs
from tests.support.fake_runtime import FakeRuntime

pytestmark = pytest.mark.slow


def _registry(models_dir: Path, **config: object) -> ModelRegistry:
    return ModelRegistry(
        models_dir,
        [],
        LoadConfig(warmup=False, shared_thread_pool=False, **config),
        lambda name: EngineObserver(),  # type: ignore[arg-type]
    )


@pytest.fixture
def models_dir(tmp_path: Path, tiny_package: Callable[..., Path]) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    shutil.copytree(tiny_package("marian"), root / "good")
    return root


def _corrupt_decoder(package: Path) -> str:
    manifest = Manifest.load(package)
    relative = manifest.variants["fp32"].decoder.path
    path = package / relative
    data = bytearray(path.read_bytes())
    # Inside the largest weight's bytes, so the file still parses (same size, different
    # bytes): the middle of the file may be protobuf structure instead.
    weights = max(
        (
            init.raw_data
            for graph in iter_graphs(onnx.load(str(path)).graph)
            for init in graph.initializer
        ),
        key=len,
    )
    start = data.find(weights) + len(weights) // 2
    assert len(weights) > 8192 and start >= len(weights) // 2
    data[start : start + 4096] = bytes(4096)
    path.write_bytes(bytes(data))
    return str(relative)


async def test_a_corrupt_package_is_refused_and_the_good_one_serves(
    models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Finding 5: a decoder with 4 KB zeroed mid-file loaded and served, /ready true.
    shutil.copytree(models_dir / "good", models_dir / "bad")
    relative = _corrupt_decoder(models_dir / "bad")
    caplog.set_level(logging.INFO, "service.engine")
    registry = _registry(models_dir, precision="fp32", device="cpu")
    await registry.start()
    try:
        await registry.wait_loaded()
        bad, good = registry.entries["bad"], registry.entries["good"]
        assert (bad.state, good.state) == ("failed", "ready")
        assert relative in bad.reason and "sha256" in bad.reason
        assert str(models_dir) not in bad.reason  # finding 7: no server paths
        failures = [r for r in caplog.records if "bad failed to load" in r.getMessage()]
        assert len(failures) == 1  # finding 6: logged once, with its reason
        assert registry.ready  # the default policy: any
        assert not _registry(models_dir, ready_policy="all").all_ready
    finally:
        await registry.stop(1)


async def test_verification_can_be_turned_off(models_dir: Path) -> None:
    _corrupt_decoder(models_dir / "good")
    registry = _registry(models_dir, precision="fp32", device="cpu", verify=False)
    await registry.start()
    try:
        await registry.wait_loaded()
        # Zeroed weights still load (the documented risk of the opt-out).
        assert registry.entries["good"].state == "ready"
    finally:
        await registry.stop(1)


def test_an_invalid_manifest_is_logged_once_without_paths(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Finding 6: an invalid-JSON manifest logged nothing.
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{not json")
    caplog.set_level(logging.INFO, "service.engine")
    registry = _registry(tmp_path)
    entry = registry.entries["broken"]
    assert entry.state == "failed" and str(tmp_path) not in entry.reason
    assert len([r for r in caplog.records if "broken failed to load" in r.getMessage()]) == 1


def test_an_empty_models_dir_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "service.engine")
    registry = _registry(tmp_path)
    assert not registry.ready
    assert any("no model packages" in r.getMessage() for r in caplog.records)


async def test_readiness_policy(tmp_path: Path) -> None:
    for policy, expected in (("any", True), ("all", False)):
        registry = ModelRegistry(
            tmp_path,
            [],
            LoadConfig(warmup=False, shared_thread_pool=False, ready_policy=policy),  # type: ignore[arg-type]
            lambda name: EngineObserver(),
            {"a": FakeRuntime("a", "summarization")},
        )
        registry.entries["broken"] = ModelEntry(
            "broken", None, load_state="failed", load_failure="invalid package"
        )
        await registry.start()
        await registry.wait_loaded()
        assert registry.ready is expected, policy
        await registry.stop(1)
