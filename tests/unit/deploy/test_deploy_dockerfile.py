"""Dockerfile, .dockerignore and the image's health check script."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import ModuleType

import pytest
from deploy_helpers import REPO, run, tool


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions((REPO / "Dockerfile").read_text())


def final_stage(steps: list[tuple[str, str]]) -> list[tuple[str, str]]:
    start = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[start:]


def test_hadolint_is_clean() -> None:
    result = run([tool("hadolint"), "--no-color", "Dockerfile"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    # Proves the lint above is a real check: root user, `cd` in RUN, unpinned apt.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:24.04\nRUN cd /tmp && apt-get install -y curl\n")
    result = run([tool("hadolint"), "--no-color", str(bad)])
    assert result.returncode != 0
    assert "DL3003" in result.stdout


def test_default_base_is_cuda13_with_cudnn(dockerfile: list[tuple[str, str]]) -> None:
    args = dict(a.split("=", 1) for w, a in dockerfile if w == "ARG" and "=" in a)
    base = args["BASE_IMAGE"]
    assert base.startswith("nvidia/cuda:13."), base
    assert "cudnn" in base and "runtime" in base
    assert args["ONNXRUNTIME"].startswith("onnxruntime-gpu==1.31")


def test_runtime_stage_is_non_root_with_exec_form_commands(
    dockerfile: list[tuple[str, str]],
) -> None:
    stage = final_stage(dockerfile)
    users = [a for w, a in stage if w == "USER"]
    assert users, "the runtime stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    entrypoint = json.loads(next(a for w, a in stage if w == "ENTRYPOINT"))
    assert entrypoint == ["python", "-m", "service"]
    health = next(a for w, a in stage if w == "HEALTHCHECK")
    command = json.loads(health[health.index("CMD") + 3 :])
    assert command[0] == "python"
    assert (REPO / "deploy/docker/healthcheck.py").is_file()
    assert "8000" in next(a for w, a in stage if w == "EXPOSE").split()
    env = " ".join(a for w, a in stage if w == "ENV")
    for needed in ("S2S_PORT=8000", "S2S_MODELS_DIR=/models", "S2S_HOST=0.0.0.0"):
        assert needed in env


def test_serving_install_has_no_torch(dockerfile: list[tuple[str, str]]) -> None:
    installs = [
        re.split(r"&&|;|\|\|", part)[0]
        for w, a in dockerfile
        if w == "RUN"
        for part in a.split("pip install")[1:]
    ]
    assert installs
    for args in installs:
        # Extras (`.[export]`) would bring torch; the base dependencies never do.
        assert "torch" not in args and "[" not in args, args


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule for the patterns used here: the last match wins."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pat) for p in prefixes) or fnmatch.fnmatch(path, pat):
            result = not negate
    return result


def test_dockerignore_keeps_what_copy_needs_and_drops_the_rest(
    dockerfile: list[tuple[str, str]],
) -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        src for w, a in dockerfile if w == "COPY" and "--from" not in a for src in a.split()[:-1]
    ]
    assert sources
    for src in sources:
        assert (REPO / src).exists(), src
        assert not ignored(src.rstrip("/"), patterns), f"{src} is excluded by .dockerignore"
    for heavy in (".venv/bin/python", ".cache/packages/x", ".git/HEAD", "models/demo/x.onnx"):
        assert ignored(heavy, patterns), f"{heavy} would be sent to the build"


def load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "s2s_healthcheck", REPO / "deploy/docker/healthcheck.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def health_server() -> Iterator[tuple[HTTPServer, dict[str, int]]]:
    state = {"status": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(state["status"] if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, state
    server.shutdown()
    server.server_close()


def test_healthcheck_script_follows_health_endpoint(
    health_server: tuple[HTTPServer, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, state = health_server
    module = load_healthcheck()
    monkeypatch.setenv("S2S_PORT", str(server.server_address[1]))
    assert module.main() == 0
    state["status"] = 503
    assert module.main() == 1
    server.shutdown()
    server.server_close()
    assert module.main() == 1
