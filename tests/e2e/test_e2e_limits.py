"""Overload, disconnects, API keys and SIGTERM drain against real servers with their own
settings (a small queue, batching off, one model) so the paths are reachable quickly."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from tests_e2e_support import SENTENCES

pytestmark = pytest.mark.slow

# Slow requests for a tiny model: long input, many beams, no early stop.
SLOW = {"text": " ".join(SENTENCES[:6]), "options": {"num_beams": 16, "min_new_tokens": 60}}


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _fire(
    url: str, payloads: list[dict[str, Any]], path: str = "/summarize", timeout: float = 300
) -> list[httpx.Response | BaseException]:
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as c:
        return list(
            await asyncio.gather(*(c.post(path, json=p) for p in payloads), return_exceptions=True)
        )


def _send_raw(url: str, path: str, body: dict[str, Any], headers: dict[str, str]) -> socket.socket:
    """Send a POST on a raw socket and return it unread (closing it is a disconnect)."""
    host, port = url.removeprefix("http://").split(":")
    payload = json.dumps(body).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n{head}\r\n".encode()
        + payload
    )
    return sock


@pytest.fixture
def small_server(server_factory: Callable[..., Any]) -> Any:
    """One summarization model, one request per batch, a queue of 2."""
    return server_factory(
        S2S_MODELS="tiny-bart",
        S2S_MAX_BATCH_SIZE="1",
        S2S_MAX_WAIT_MS="0",
        S2S_MAX_QUEUE="2",
        S2S_API_KEYS="e2e-secret-key",
        S2S_DRAIN_GRACE_S="120",
    )


AUTH = {"Authorization": "Bearer e2e-secret-key"}


def test_queue_full_429_disconnect_and_auth(small_server: Any) -> None:
    url = small_server.url
    with httpx.Client(base_url=url, timeout=60) as c:
        assert c.post("/summarize", json={"text": "x"}).status_code == 401
        assert c.get("/health").status_code == 200 and c.get("/metrics").status_code == 200

    async def overload() -> list[httpx.Response | BaseException]:
        async with httpx.AsyncClient(
            base_url=url, timeout=300, headers=AUTH, limits=httpx.Limits(max_connections=50)
        ) as c:
            return list(
                await asyncio.gather(
                    *(c.post("/summarize", json=SLOW) for _ in range(12)), return_exceptions=True
                )
            )

    results = asyncio.run(overload())
    codes = [r.status_code for r in results if isinstance(r, httpx.Response)]
    assert len(codes) == 12 and 200 in codes and 429 in codes, codes
    rejected = next(r for r in results if isinstance(r, httpx.Response) and r.status_code == 429)
    assert int(rejected.headers["retry-after"]) >= 1
    assert rejected.json()["error"]["type"] == "queue_full"

    # Clients that give up: their generations are removed (queue) or cancelled (running).
    sockets = []
    with httpx.Client(base_url=url, timeout=60, headers=AUTH) as c:
        # One running, then one queued behind it (batching is off).
        for n in (1, 2):
            sockets.append(_send_raw(url, "/summarize", SLOW, AUTH))
            for _ in range(1000):
                if c.get("/models").json()["models"][0]["batching"]["active"] == n:
                    break
                time.sleep(0.002)
    for sock in sockets:
        sock.close()
    with httpx.Client(base_url=url, timeout=60, headers=AUTH) as c:
        idle = False
        for _ in range(100):
            batching = c.get("/models").json()["models"][0]["batching"]
            if batching["active"] == 0 and batching["queue_depth"] == 0:
                idle = True
                break
            time.sleep(0.1)
        metrics = c.get("/metrics").text
    assert idle, "abandoned requests left the engine"
    assert _metric(metrics, "s2s_rejections_total", reason="cancelled") >= 1
    assert _metric(metrics, "s2s_rejections_total", reason="queue_full") >= 1
    assert _metric(metrics, "s2s_requests_total", status="499") >= 1


def test_sigterm_drains_in_flight_work_then_exits_0(server_factory: Callable[..., Any]) -> None:
    srv = server_factory(
        S2S_MODELS="tiny-bart", S2S_MAX_BATCH_SIZE="1", S2S_MAX_QUEUE="32", S2S_DRAIN_GRACE_S="120"
    )
    count = 12
    results: list[httpx.Response | BaseException] = []

    def in_flight() -> None:
        # Batching off: accepted requests run one after another, so draining takes a while.
        results.extend(asyncio.run(_fire(srv.url, [SLOW] * count)))

    worker = threading.Thread(target=in_flight)
    worker.start()
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        for _ in range(500):
            batching = c.get("/models").json()["models"][0]["batching"]
            if batching["active"] == count:
                break
            time.sleep(0.01)
        srv.process.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        ready = c.get("/ready")
        new_work = c.post("/summarize", json={"text": "x"})
    worker.join(300)
    code = srv.process.wait(120)
    assert batching["active"] == count
    assert ready.status_code == 503 and ready.json()["draining"] is True
    assert new_work.status_code == 503 and new_work.json()["error"]["type"] == "draining"
    assert [r.status_code for r in results if isinstance(r, httpx.Response)] == [200] * count
    assert code == 0, srv.log()[-3000:]
    assert re.search(r"SIGTERM: draining", srv.log())
