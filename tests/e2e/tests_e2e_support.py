"""Helpers shared by the e2e tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

# Short real-looking English inputs (Multi30k style); 64 distinct ones.
_SUBJECTS = [
    "A man",
    "A woman",
    "Two dogs",
    "A child",
    "An old man",
    "Three girls",
    "A cyclist",
    "A black dog",
]
_ACTIONS = [
    "rides a bike",
    "plays in the snow",
    "sits on a bench",
    "runs on the beach",
    "holds a red umbrella",
    "jumps over a fence",
    "reads a book",
    "walks down the street",
]
SENTENCES = [f"{s} {a}." for s in _SUBJECTS for a in _ACTIONS]


def sse_events(lines: Iterable[str]) -> list[Any]:
    """JSON objects (and the literal "[DONE]") from SSE ``data:`` lines."""
    out: list[Any] = []
    for line in lines:
        if line.startswith("data:"):
            data = line[5:].strip()
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running service process."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def client(self, **kw: object) -> httpx.Client:
        """An httpx client for this server."""
        return httpx.Client(base_url=self.url, timeout=kw.pop("timeout", 120), **kw)  # type: ignore[arg-type]

    def log(self) -> str:
        """Everything the server wrote so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait; return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        return int(self.process.returncode)


def start_server(
    models_dir: Path, log_path: Path, ready_timeout: float = 240, **env: str
) -> Server:
    """Start `python -m service` and wait until /ready answers 200."""
    port = free_port()
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "S2S_INTRA_OP_THREADS": "1", **env}
    log_file = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--models-dir",
            str(models_dir),
        ],
        cwd=REPO_ROOT,
        env=environment,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/ready", timeout=2).status_code == 200:
                return server
        time.sleep(0.2)
    server.process.kill()
    raise RuntimeError(f"server not ready after {ready_timeout}s:\n{server.log()}")


@dataclass
class Outcome:
    """One request's fate: its status (0 when no response came), time and answer."""

    status: int
    seconds: float
    body: Any = None
    headers: dict[str, str] | None = None
    error: str | None = None
    sent_at: float = 0.0


async def timed_post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Outcome:
    """POST ``body`` and time it; transport errors become an Outcome with status 0."""
    started = time.monotonic()
    try:
        response = await client.post(path, json=body)
    except httpx.HTTPError as exc:
        return Outcome(0, time.monotonic() - started, error=type(exc).__name__, sent_at=started)
    seconds = time.monotonic() - started
    try:
        payload = response.json()
    except ValueError:
        payload = response.text
    return Outcome(response.status_code, seconds, payload, dict(response.headers), None, started)


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, nearest rank."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def metric_sum(metrics_text: str, name: str) -> float:
    """The sum of every sample of metric ``name`` (all label sets) in a /metrics page."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return total
