"""Throughput per batch mode, streamed and not: what streaming costs, and what a mode costs.

``python -m bench.stream_cost --package PKG`` (docs/benchmarks.md, open-loop section).

For each batch mode (or ``bench.openloop`` target name: ``iteration-shared``,
``iteration-join4``, ...) a server runs the package; ``--clients`` closed-loop clients send
single WMT14 sentences, or with ``--kind paragraph`` paragraphs of 3-6 consecutive lines
(greedy, natural stopping) for ``--seconds``, first as plain JSON requests, then streamed
(SSE, read to ``[DONE]``). Completed requests/s and p50 latency per cell tell
a mode's own cost (plain) from the cost of delivering tokens one by one (streamed).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from collections.abc import Sequence
from pathlib import Path

import httpx

from bench.documents import command_line, write_document
from bench.load import free_port, serve, server_flags, service_command, single_sentences
from bench.openloop import (
    MixRequest,
    closed_loop,
    paragraphs,
    send_plain,
    send_streaming,
    translate_body,
    wmt_lines,
)


async def measure(
    base: str, texts: Sequence[str], stream: bool, clients: int, seconds: float
) -> tuple[float, float]:
    """(completed requests/s, p50 latency s) of ``clients`` closed-loop clients."""
    requests = [MixRequest("text", "/translate", translate_body(text)) for text in texts]
    limits = httpx.Limits(max_connections=clients + 8)
    async with httpx.AsyncClient(timeout=300.0, limits=limits) as client:
        send = send_streaming if stream else send_plain
        outcomes, elapsed = await closed_loop(client, base, requests, clients, seconds, send)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} requests failed, the first: {failed[0]}")
    latencies = [o.latency_s for o in outcomes if o.latency_s is not None]
    return len(outcomes) / elapsed, statistics.median(latencies)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every mode plain and streamed; print and write the rows."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--package", type=Path, required=True, help="translation package")
    p.add_argument("--modes", default="dynamic,iteration")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--kind", choices=["sentence", "paragraph"], default="sentence")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.kind == "paragraph":
        texts = paragraphs(wmt_lines(512)[0], 32, seed=18)
    else:
        texts = single_sentences(64)
    rows = []
    for mode in args.modes.split(","):
        port = free_port()
        package = args.package.resolve()
        batch_mode, flags = server_flags(mode)
        command = service_command(port, package.parent, [package.name], batch_mode, extra=flags)
        with serve(command, port, 2, 300.0) as base:
            asyncio.run(measure(base, texts, False, 4, 3.0))  # warm-up
            for stream in (False, True):
                rate, p50 = asyncio.run(measure(base, texts, stream, args.clients, args.seconds))
                rows.append({"mode": mode, "stream": stream, "per_s": rate, "p50_s": p50})
                kind = "streamed" if stream else "plain"
                print(f"{mode:<10} {kind:<8} {rate:6.2f} req/s  p50 {p50 * 1000:6.0f} ms")
    write_document(args.json, {"command": command_line("bench.stream_cost", argv), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
