"""Soak: a real server under steady mixed load for many minutes; RSS growth and errors.

    python -m bench.soak --models-dir models --minutes 10

Starts `python -m service` on a free 127.0.0.1 port, keeps ``--clients`` closed-loop
clients sending /translate requests (70 % one sentence, 30 % 4-8 sentences, some
streamed, some abandoned mid-request), samples the server's RSS every ``--sample-s``
seconds, and prints one JSON summary: requests by status, errors (anything but 200 and
the abandoned ones), RSS after the first sample (warm) and at the end, and its growth.
Exit code 1 when there was an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

_SENTENCES = [
    f"{s} {a}."
    for s in ("A man", "A woman", "Two dogs", "A child", "An old man", "Three girls")
    for a in ("rides a bike", "plays in the snow", "sits on a bench", "reads a book")
]


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _body(rng: random.Random, source: str, target: str) -> dict[str, Any]:
    count = 1 if rng.random() < 0.7 else rng.randint(4, 8)
    text = " ".join(rng.choice(_SENTENCES) for _ in range(count))
    return {"text": text, "source_lang": source, "target_lang": target}


async def _client(
    client: httpx.AsyncClient,
    rng: random.Random,
    args: argparse.Namespace,
    end: float,
    counts: Counter[str],
) -> None:
    while time.monotonic() < end:
        body = _body(rng, args.source_lang, args.target_lang)
        kind = rng.random()
        try:
            if kind < 0.05:  # abandoned mid-request
                try:
                    await asyncio.wait_for(client.post("/translate", json=body), 0.05)
                    counts["200"] += 1
                except asyncio.TimeoutError:
                    counts["abandoned"] += 1
                continue
            if kind < 0.25:  # streamed
                body["stream"] = True
                async with client.stream("POST", "/translate", json=body) as response:
                    text = "".join([chunk async for chunk in response.aiter_text()])
                ok = response.status_code == 200 and "data: [DONE]" in text
                counts["200" if ok else f"stream {response.status_code}"] += 1
                continue
            response = await client.post("/translate", json=body)
            counts[str(response.status_code)] += 1
        except httpx.HTTPError as exc:
            counts[type(exc).__name__] += 1


async def _run(args: argparse.Namespace, url: str, pid: int) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    samples: list[tuple[float, float]] = []
    started = time.monotonic()
    end = started + args.minutes * 60
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        clients = [
            asyncio.ensure_future(_client(client, random.Random(i), args, end, counts))
            for i in range(args.clients)
        ]
        while time.monotonic() < end:
            samples.append((time.monotonic() - started, rss_mb(pid)))
            await asyncio.sleep(min(args.sample_s, max(0.0, end - time.monotonic())))
        await asyncio.gather(*clients)
        samples.append((time.monotonic() - started, rss_mb(pid)))
        health = (await client.get("/health")).status_code
    errors = sum(n for k, n in counts.items() if k not in ("200", "abandoned"))
    warm = samples[1][1] if len(samples) > 1 else samples[0][1]
    return {
        "minutes": args.minutes,
        "clients": args.clients,
        "requests": dict(counts),
        "errors": errors,
        "health_after": health,
        "rss_mb_start": round(samples[0][1], 1),
        "rss_mb_warm": round(warm, 1),
        "rss_mb_end": round(samples[-1][1], 1),
        "rss_growth_mb": round(samples[-1][1] - warm, 1),
        "rss_growth_pct": round(100 * (samples[-1][1] - warm) / warm, 1),
        "rss_samples": [(round(t), round(m, 1)) for t, m in samples],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the soak; print the JSON summary; 1 when there was an error."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--models-dir", default="models")
    parser.add_argument("--models", default="", help="S2S_MODELS (default: all)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--source-lang", default="en")
    parser.add_argument("--target-lang", default="de")
    args = parser.parse_args(argv)
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if args.models:
        env["S2S_MODELS"] = args.models
    server = subprocess.Popen(
        [sys.executable, "-m", "service", "--port", str(port), "--models-dir", args.models_dir],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not become ready (exit {server.poll()})")
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        summary = asyncio.run(_run(args, url, server.pid))
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(60)
    summary["server_exit"] = code
    print(json.dumps(summary, indent=1))
    return 1 if summary["errors"] or code != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
