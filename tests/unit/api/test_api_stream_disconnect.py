"""Closing an SSE stream mid-way cancels the generation (real uvicorn, fake runtime)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import uvicorn
from api_helpers import wait_until

from service.api import create_app
from service.settings import Settings
from tests.support.fake_runtime import FakeRuntime


async def test_stream_disconnect_cancels_the_generation(tmp_path: Path) -> None:
    runtime = FakeRuntime("fake-sum", "summarization", step_delay_s=0.02)
    app = create_app(
        Settings(models_dir=tmp_path, batch_mode="continuous"), runtimes={"fake-sum": runtime}
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    serving = asyncio.create_task(server.serve())
    try:
        assert await wait_until(lambda: server.started, timeout=10)
        await app.state.registry.wait_loaded()
        engine = app.state.registry.entries["fake-sum"].service.engine
        payload = {"text": "OOOO", "stream": True, "options": {"max_new_tokens": 200}}
        url = f"http://127.0.0.1:{port}"
        async with (
            httpx.AsyncClient(base_url=url, timeout=30) as c,
            c.stream("POST", "/summarize", json=payload) as response,
        ):
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    break  # one piece received: now hang up
        status = engine.status
        assert await wait_until(lambda: status()["active"] == status()["in_flight"] == 0, 5)
        assert runtime.removed, "the generation left the running batch"
        assert runtime.steps < 150, "it did not run to the end"
        metrics = app.state.metrics.exposition().decode()
        assert 's2s_rejections_total{model="fake-sum",reason="cancelled"} 1.0' in metrics
        assert 'route="/summarize",status="499"' in metrics
    finally:
        server.should_exit = True
        await serving
