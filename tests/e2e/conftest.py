"""Real servers for end-to-end tests: `python -m service` subprocesses on 127.0.0.1.

The tiny packages (marian translation, bart summarization, blenderbot chat) are built
once by the shared fixtures and linked into a temporary models folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
E2E_FAMILIES = ("marian", "bart", "blenderbot")


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


@pytest.fixture(scope="session")
def e2e_models_dir(
    tiny_package: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A models folder linking the three tiny packages."""
    root = tmp_path_factory.mktemp("models")
    for family in E2E_FAMILIES:
        package = tiny_package(family)
        (root / package.name).symlink_to(package, target_is_directory=True)
    return root


@pytest.fixture(scope="session")
def server(e2e_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The shared default server (continuous batching)."""
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    srv = start_server(e2e_models_dir, log_path, S2S_MAX_WAIT_MS="10")
    yield srv
    srv.stop()


@pytest.fixture
def server_factory(e2e_models_dir: Path, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start extra servers with their own settings (stopped at the end of the test)."""
    started: list[Server] = []

    def make(**env: str) -> Server:
        srv = start_server(e2e_models_dir, tmp_path / f"server{len(started)}.log", **env)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        if srv.process.poll() is None:
            srv.process.kill()
            srv.process.wait()
