"""Build the app around fake runtimes and talk to it in-process (httpx + asgi-lifespan)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from asgi_lifespan import LifespanManager

from service.api import create_app
from service.api.connections import header_timeout_protocol
from service.settings import Settings
from tests.support.fake_runtime import FakeRuntime


def fake_runtimes(**kw: Any) -> dict[str, FakeRuntime]:
    """One fake model per task."""
    return {
        "fake-mt": FakeRuntime("fake-mt", "translation", **kw),
        "fake-sum": FakeRuntime("fake-sum", "summarization", **kw),
        "fake-chat": FakeRuntime("fake-chat", "chat", **kw),
    }


@asynccontextmanager
async def client_for(
    tmp_path: Path, runtimes: dict[str, Any] | None = None, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on a started app whose models are ready."""
    app = create_app(
        Settings(models_dir=tmp_path, **settings),
        runtimes=runtimes if runtimes is not None else fake_runtimes(),
    )
    async with LifespanManager(app) as manager:
        await app.state.registry.wait_loaded()
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def sse_events(text: str) -> list[Any]:
    """Decode an SSE body into JSON objects (and the literal "[DONE]")."""
    out: list[Any] = []
    for line in text.splitlines():
        if line.startswith("data:"):
            data = line[5:].strip()
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


async def wait_until(predicate: Any, timeout: float = 2.0) -> bool:
    """Poll ``predicate`` until true or timeout."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return bool(predicate())


@asynccontextmanager
async def serving(tmp_path: Path, **settings: Any) -> AsyncIterator[tuple[str, int]]:
    """A real uvicorn on 127.0.0.1 with the server's own protocol class (header timeout)
    around the app with fake runtimes; yields (host, port)."""
    app = create_app(Settings(models_dir=tmp_path, **settings), runtimes=fake_runtimes())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        http=header_timeout_protocol(app.state.settings.header_timeout_s),
        timeout_graceful_shutdown=2,  # a held connection must not hang the test's end
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        assert await wait_until(lambda: server.started, timeout=10)
        await app.state.registry.wait_loaded()
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        await task
