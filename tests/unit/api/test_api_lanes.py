"""``S2S_RUNTIME_LANES=2`` through the whole service: the registry loads each package twice
with one thread each, ``/models`` says so, and concurrent requests (dynamic batches split
across the lanes, and continuous step batches) get what one runtime gives them."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from service.api import create_app
from service.runtime import GenerationOptions, load_runtime
from service.settings import Settings
from tests.support.positioned import SENTENCES

MAX_NEW = 24


@pytest.mark.parametrize("mode", ["dynamic", "continuous"])
async def test_lanes_serve_what_one_runtime_gives(
    mode: str, tmp_path: Path, tiny_package: Callable[..., Path]
) -> None:
    package = tiny_package("marian")
    models = tmp_path / "models"
    shutil.copytree(package, models / "tiny-marian")
    settings = Settings.model_validate(
        {
            "models_dir": models,
            "batch_mode": mode,
            "device": "cpu",
            "runtime_lanes": 2,
            "max_wait_ms": 50,
        }
    )
    app = create_app(settings)
    body = {"source_lang": "en", "target_lang": "de", "options": {"max_new_tokens": MAX_NEW}}
    async with LifespanManager(app) as manager:
        await app.state.registry.wait_loaded()
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            (listed,) = (await client.get("/models")).json()["models"]
            replies = await asyncio.gather(
                *(client.post("/translate", json={**body, "text": text}) for text in SENTENCES)
            )
    assert (listed["lanes"], listed["threads"], listed["state"]) == (2, 1, "ready")
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    got = [r.json()["translations"][0] for r in replies]
    rt = load_runtime(package, device="cpu", precision="int8")
    options = rt.resolve(GenerationOptions(max_new_tokens=MAX_NEW))
    want = [rt.decode(rt.generate([ids], options)[0][0]) for ids in rt.encode_texts(SENTENCES)]
    assert got == want
    assert len(set(got)) >= 4  # input-dependent
