"""A package that failed to load answers for its task with 503 model_failed, whatever
broke (issue 39, finding 7): a chat package whose manifest is invalid answered 422
no_model ("no chat model is served") where a broken summarizer gave 503."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.engine import (
    EngineObserver,
    LoadConfig,
    ModelFailedError,
    ModelRegistry,
    NoModelError,
)
from service.engine.ports import Runtime
from tests.support.fake_runtime import fake_manifest


def _registry(models_dir: Path) -> ModelRegistry:
    def loader(path: Path) -> Runtime:
        raise RuntimeError("onnx file is broken")

    return ModelRegistry(
        models_dir,
        [],
        LoadConfig(warmup=False),
        lambda name: EngineObserver(),
        loader=loader,
    )


def _package(root: Path, name: str, manifest: str) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "manifest.json").write_text(manifest, encoding="utf-8")


async def test_a_chat_package_with_an_invalid_manifest_is_model_failed(tmp_path: Path) -> None:
    summarizer = fake_manifest("sum", "summarization").model_dump_json()
    _package(tmp_path, "broken-sum", summarizer)  # loads, then fails
    _package(tmp_path, "broken-chat", json.dumps({"name": "broken-chat", "task": "chat"}))
    registry = _registry(tmp_path)
    await registry.start()
    try:
        await registry.wait_loaded()
        with pytest.raises(ModelFailedError):
            registry.for_task("summarization", None)
        with pytest.raises(ModelFailedError) as chat:
            registry.for_task("chat", None)
        assert "broken-chat" in str(chat.value)
        assert registry.entries["broken-chat"].task == "chat"
        with pytest.raises(NoModelError):  # nothing configured for it at all
            registry.for_task("translation", None)
    finally:
        await registry.stop(0)


async def test_an_unreadable_manifest_makes_a_missing_task_model_failed(tmp_path: Path) -> None:
    _package(tmp_path, "garbage", "{not json")
    registry = _registry(tmp_path)
    await registry.start()
    try:
        await registry.wait_loaded()
        with pytest.raises(ModelFailedError) as failed:
            registry.for_task("chat", None)
        assert "garbage" in str(failed.value)
    finally:
        await registry.stop(0)
