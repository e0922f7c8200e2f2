"""Real servers for end-to-end tests: `python -m service` subprocesses on 127.0.0.1.

The tiny packages (marian translation, bart summarization, blenderbot chat) are built
once by the shared fixtures and linked into a temporary models folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests_e2e_support import Server, start_server

E2E_FAMILIES = ("marian", "bart", "blenderbot")


@pytest.fixture(scope="session")
def e2e_models_dir(
    tiny_package: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A models folder linking the three tiny packages.

    ``S2S_E2E_MODELS_DIR`` points the tests at an existing folder holding packages named
    tiny-marian, tiny-bart and tiny-blenderbot instead (e.g. one `make defaults` filled).
    """
    given = os.environ.get("S2S_E2E_MODELS_DIR")
    if given:
        return Path(given)
    root = tmp_path_factory.mktemp("models")
    for family in E2E_FAMILIES:
        package = tiny_package(family)
        (root / package.name).symlink_to(package, target_is_directory=True)
    return root


@pytest.fixture(scope="session")
def server(e2e_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The shared server: the default (dynamic) batching, fp32 variants."""
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    # fp32, the reference precision; int8 (per-row) batching exactness has its own test.
    srv = start_server(e2e_models_dir, log_path, S2S_MAX_WAIT_MS="10", S2S_PRECISION="fp32")
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
