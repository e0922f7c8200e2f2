"""A real Prometheus server scrapes /metrics; PromQL over its HTTP API sees our counter."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests_e2e_support import free_port

pytestmark = pytest.mark.slow


def test_prometheus_scrapes_and_queries(server: Any, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (make system-deps installs it)")
    with server.client() as c:
        for _ in range(3):
            assert c.post("/summarize", json={"text": "A man rides a bike."}).status_code == 200
    target = server.url.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n"
        f"  - job_name: s2s\n    static_configs:\n      - targets: ['{target}']\n"
    )
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("wb"),
    )
    query = 'sum(s2s_requests_total{route="/summarize",status="200"})'
    value = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and value is None:
            time.sleep(1)
            try:
                r = httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/query", params={"query": query}, timeout=5
                )
            except httpx.HTTPError:
                continue
            result = r.json().get("data", {}).get("result", [])
            if result:
                value = float(result[0]["value"][1])
        targets = httpx.get(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5).json()
    finally:
        process.terminate()
        process.wait(30)
    assert value is not None and value >= 3, (tmp_path / "prometheus.log").read_text()[-2000:]
    health = [t["health"] for t in targets["data"]["activeTargets"]]
    assert health == ["up"]
