"""``S2S_BATCH_MODE=continuous`` through the whole service: the registry loads a package
exported with ``--positioned`` with its positioned graphs and serves it in continuous
mode; a package without them (``copy_summarizer``, shipped like the committed ones) is
served in dynamic mode with a warning; concurrent requests get their single-request
outputs."""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from service.api import create_app
from service.api.app import load_config
from service.engine.registry import default_loader
from service.runtime import GenerationOptions, load_runtime
from service.settings import Settings
from tests.support.positioned import SENTENCES, positioned_package


def _positioned_package() -> Path:
    return positioned_package("marian")


async def test_continuous_mode_end_to_end(
    copy_summarizer: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    package = _positioned_package()
    models = tmp_path / "models"
    shutil.copytree(package, models / "tiny-marian")
    shutil.copytree(copy_summarizer, models / "copy-summarizer")
    settings = Settings.model_validate(
        {
            "models_dir": models,
            "batch_mode": "continuous",
            "device": "cpu",
            "intra_op_threads": 1,
        }
    )
    config = load_config(settings)
    assert config.shared_thread_pool  # what the service runs; process-wide, so not here
    app = create_app(settings, loader=default_loader(replace(config, shared_thread_pool=False)))
    body = {"source_lang": "en", "target_lang": "de", "options": {"max_new_tokens": 24}}
    with caplog.at_level(logging.WARNING, logger="service.engine"):
        async with LifespanManager(app) as manager:
            await app.state.registry.wait_loaded()
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                listed = (await client.get("/models")).json()["models"]
                modes = {m["name"]: m["batching"]["mode"] for m in listed}
                replies = await asyncio.gather(
                    *(client.post("/translate", json={**body, "text": text}) for text in SENTENCES)
                )
    assert modes == {"tiny-marian": "continuous", "copy-summarizer": "dynamic"}
    assert "copy-summarizer: batch mode continuous needs a package exported with --positioned" in (
        caplog.text
    )
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    got = [r.json()["translations"][0] for r in replies]
    # Each text decoded alone (its own positioned batch, the same int8 variant).
    rt = load_runtime(package, device="cpu", precision="int8", positioned=True)
    options = rt.resolve(GenerationOptions(max_new_tokens=24))
    want = []
    for ids in rt.encode_texts(SENTENCES):
        batch = rt.new_positioned_batch()
        batch.add(0, ids, options)
        events = []
        while len(batch):
            events += batch.step()
        sequences = next(e.sequences for e in events if e.finished)
        assert sequences is not None
        want.append(rt.decode(sequences[0]))
    assert got == want
    assert options.num_beams > 1  # the package default: beam search in the positioned batch
