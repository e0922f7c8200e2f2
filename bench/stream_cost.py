"""Throughput per batch mode, streamed and not: what streaming costs, and what a mode costs.

``python -m bench.stream_cost --package PKG`` (docs/benchmarks.md, open-loop section).

For each batch mode a server runs the package; ``--clients`` closed-loop clients send single
WMT14 sentences (greedy, natural stopping) for ``--seconds``, first as plain JSON requests,
then streamed (SSE, read to ``[DONE]``). Completed requests/s and p50 latency per cell tell
a mode's own cost (plain) from the cost of delivering tokens one by one (streamed).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from bench.documents import command_line, write_document
from bench.load import free_port, serve, single_sentences
from bench.openloop import MixRequest, send_streaming, translate_body


def server_command(package: Path, mode: str, port: int) -> list[str]:
    """The service on ``package`` with ``mode`` batching."""
    return [
        sys.executable, "-m", "service",
        "--host", "127.0.0.1", "--port", str(port),
        "--models-dir", str(package.parent), "--models", package.name,
        "--device", "cpu", "--precision", "int8",
        "--batch-mode", mode, "--max-batch-size", "64",
        "--log-format", "json",
    ]  # fmt: skip


async def closed_loop(
    base: str, texts: Sequence[str], stream: bool, clients: int, seconds: float
) -> tuple[float, float]:
    """(completed requests/s, p50 latency s) of ``clients`` closed-loop clients."""
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients + 8)
    async with httpx.AsyncClient(base_url=base, timeout=300.0, limits=limits) as client:

        async def worker(index: int) -> None:
            i = index
            while time.perf_counter() < stop_at:
                body = translate_body(texts[i % len(texts)])
                i += clients
                started = time.perf_counter()
                if stream:
                    outcome = await send_streaming(
                        client, base, MixRequest("s", "/translate", body)
                    )
                    if not outcome.ok:
                        raise RuntimeError(f"stream failed: {outcome}")
                else:
                    response = await client.post("/translate", json={**body, "stream": False})
                    response.raise_for_status()
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(clients)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, statistics.median(latencies)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every mode plain and streamed; print and write the rows."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--package", type=Path, required=True, help="translation package")
    p.add_argument("--modes", default="dynamic,iteration")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    texts = single_sentences(64)
    rows = []
    for mode in args.modes.split(","):
        port = free_port()
        with serve(server_command(args.package.resolve(), mode, port), port, 2, 300.0) as base:
            asyncio.run(closed_loop(base, texts, False, 4, 3.0))  # warm-up
            for stream in (False, True):
                rate, p50 = asyncio.run(
                    closed_loop(base, texts, stream, args.clients, args.seconds)
                )
                rows.append({"mode": mode, "stream": stream, "per_s": rate, "p50_s": p50})
                kind = "streamed" if stream else "plain"
                print(f"{mode:<10} {kind:<8} {rate:6.2f} req/s  p50 {p50 * 1000:6.0f} ms")
    write_document(args.json, {"command": command_line("bench.stream_cost", argv), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
