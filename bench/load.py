"""Service load test: a bounded async load generator sweeping concurrency (loopback only).

Starts each target server in turn on a free loopback port, waits for ``/ready``, then for
each concurrency level runs that many closed-loop clients (each sends its next request as
soon as the last one answered) for ``--duration-s`` or ``--max-requests``, whichever comes
first. Targets: our service with ``continuous`` (the package is then built with the
positioned decoder) and ``dynamic`` batching, and ``naive`` (a transformers pipeline
behind FastAPI, one request at a time, ``bench.naive_server``). Every request is one real
WMT14 sentence with a fixed output length (min = max new tokens), so tokens/s = answered
requests x max new tokens.

The same process first measures the engine offline (our runtime, no HTTP) on the same
sentences: batch-1 latency (to get the latency HTTP adds at concurrency 1) and tokens/s at
the server's batch size (what the service should approach under load).

    python -m bench.load --package PKG --checkpoint CKPT --json .cache/bench/load.json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.documents import command_line, write_document

REPO = Path(__file__).resolve().parent.parent
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TARGETS = ("continuous", "dynamic", "naive")
# A service target is a batch mode of the service (bench.openloop uses the same names).
SERVICE_TARGETS = ("continuous", "dynamic")
# Every request translates WMT14 English sources into German.
SOURCE_LANG, TARGET_LANG = "en", "de"


def check_loopback(url: str) -> str:
    """Return ``url`` if its host is a loopback address; ValueError otherwise (this tool
    must never load a machine it does not own)."""
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK:
        raise ValueError(f"{url}: the load generator only targets loopback ({sorted(LOOPBACK)})")
    return url


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class LevelResult:
    """One concurrency level against one target."""

    target: str
    concurrency: int
    requests: int
    errors: int
    unfinished: int
    elapsed_s: float
    requests_per_s: float
    tokens_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    error_sample: str = ""


async def run_level(
    client: httpx.AsyncClient,
    url: str,
    bodies: Sequence[dict[str, Any]],
    concurrency: int,
    duration_s: float,
    max_requests: int,
    tokens_per_request: int,
    grace_s: float = 60.0,
    target: str = "",
) -> LevelResult:
    """Closed-loop load: ``concurrency`` clients until ``duration_s`` passed or
    ``max_requests`` were sent; requests still running ``grace_s`` after that are
    cancelled and counted as unfinished."""
    check_loopback(url)
    latencies: list[float] = []
    errors: list[str] = []
    sent = 0
    start = time.perf_counter()
    stop_at = start + duration_s

    async def client_loop(worker: int) -> None:
        nonlocal sent
        i = worker
        while time.perf_counter() < stop_at and sent < max_requests:
            sent += 1
            body = bodies[i % len(bodies)]
            i += concurrency
            t0 = time.perf_counter()
            try:
                response = await client.post(url, json=body)
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            if response.status_code == 200:
                latencies.append(time.perf_counter() - t0)
            else:
                errors.append(f"HTTP {response.status_code}: {response.text[:200]}")

    tasks = [asyncio.create_task(client_loop(w)) for w in range(concurrency)]
    _, pending = await asyncio.wait(tasks, timeout=duration_s + grace_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    elapsed = time.perf_counter() - start
    done = len(latencies)
    ms = [s * 1000 for s in latencies]
    return LevelResult(
        target=target,
        concurrency=concurrency,
        requests=done,
        errors=len(errors),
        unfinished=len(pending),
        elapsed_s=elapsed,
        requests_per_s=done / elapsed if elapsed else 0.0,
        tokens_per_s=done * tokens_per_request / elapsed if elapsed else 0.0,
        p50_ms=percentile(ms, 50),
        p95_ms=percentile(ms, 95),
        p99_ms=percentile(ms, 99),
        error_sample=errors[0] if errors else "",
    )


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def batch_mode(target: str) -> str:
    """The service's batch mode a service target name stands for (ValueError otherwise)."""
    if target not in SERVICE_TARGETS:
        raise ValueError(f"unknown target {target!r}: one of {', '.join(SERVICE_TARGETS)}")
    return target


def server_command(target: str, args: argparse.Namespace, port: int) -> list[str]:
    """The command line that serves ``target`` on ``port``."""
    if target == "naive":
        return [
            sys.executable,
            "-m",
            "bench.naive_server",
            "--checkpoint",
            str(args.checkpoint),
            "--port",
            str(port),
            "--threads",
            str(args.threads),
        ]
    package = Path(args.package)
    extra = ("--max-queue", str(args.max_queue))
    return service_command(
        port,
        package.parent,
        [package.name],
        batch_mode(target),
        args.precision,
        args.max_batch_size,
        extra,
    )


def service_default(name: str) -> int:
    """The service's default for an integer setting (what ``make serve`` runs with)."""
    from service.settings import Settings

    value = Settings.model_fields[name].default
    assert isinstance(value, int), name
    return value


def service_command(
    port: int,
    models_dir: Path,
    names: Sequence[str],
    batch_mode: str,
    precision: str = "int8",
    max_batch_size: int | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """Our service on loopback ``port``, CPU, serving ``names`` from ``models_dir`` with
    ``batch_mode`` batching and ``max_batch_size`` rows (None: the service's default;
    ``extra``: more flags); JSON logs. Every service benchmark starts its servers with this."""
    batch = () if max_batch_size is None else ("--max-batch-size", str(max_batch_size))
    return [
        sys.executable, "-m", "service",
        "--host", "127.0.0.1", "--port", str(port),
        "--models-dir", str(models_dir), "--models", ",".join(names),
        "--device", "cpu", "--precision", precision,
        "--batch-mode", batch_mode, *batch,
        *extra,
        "--log-format", "json",
    ]  # fmt: skip


@contextmanager
def serve(command: list[str], port: int, threads: int, ready_timeout_s: float) -> Iterator[str]:
    """Run a server process until the block ends; yields its base URL once ``/ready``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "S2S_INTRA_OP_THREADS": str(threads)}
    env["S2S_LOG_LEVEL"] = "warning"
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    base = check_loopback(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with status {proc.returncode}: {command}")
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after {ready_timeout_s:.0f}s: {command}")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def generated_tokens(base: str) -> float | None:
    """``s2s_generated_tokens_total`` summed over models (None if the server has none)."""
    try:
        text = httpx.get(f"{base}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    total = None
    for line in text.splitlines():
        if line.startswith("s2s_generated_tokens_total"):
            total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
    return total


def single_sentences(count: int) -> list[str]:
    """WMT14 sources the service does not split further (one sentence = one generation)."""
    from bench.inputs import translation_texts
    from service.text import sentences

    pool = translation_texts(count * 4).texts
    picked = [t for t in pool if len(sentences.split(t, SOURCE_LANG).sentences) == 1]
    return [picked[i % len(picked)] for i in range(count)]


class OfflineEngine:
    """Our runtime in this process (no HTTP) on the sentences the service is sent."""

    def __init__(
        self,
        package: Path,
        precision: str,
        threads: int,
        texts: list[str],
        max_new: int,
        num_beams: int = 1,
    ) -> None:
        from service.runtime import GenerationOptions, load_runtime

        self.runtime = load_runtime(
            package, device="cpu", precision=precision, intra_op_threads=threads
        )
        self.options = self.runtime.resolve(
            GenerationOptions(max_new_tokens=max_new, min_new_tokens=max_new, num_beams=num_beams),
            target_lang=TARGET_LANG,
        )
        # The languages the service is sent (body()), so both sides decode the same ids.
        self.ids = self.runtime.encode_texts(
            texts, source_lang=SOURCE_LANG, target_lang=TARGET_LANG
        )
        self.runtime.generate(self.ids[:1], self.options)

    def batch1_seconds(self, index: int) -> float:
        """Wall time of one batch-1 generation of sentence ``index``."""
        t0 = time.perf_counter()
        self.runtime.generate([self.ids[index % len(self.ids)]], self.options)
        return time.perf_counter() - t0

    def reference(self, batch: int) -> dict[str, float]:
        """Batch-1 p50 latency over the first 8 sentences and tokens/s at ``batch``."""
        single = [self.batch1_seconds(i) for i in range(8)]
        self.runtime.generate(self.ids[:batch], self.options)
        t0 = time.perf_counter()
        out = self.runtime.generate(self.ids[:batch], self.options)
        seconds = time.perf_counter() - t0
        tokens = sum(len(seqs[0]) for seqs in out)
        return {
            "batch1_p50_ms": statistics.median(single) * 1000,
            "batch": batch,
            "tokens_per_s": tokens / seconds,
        }


@dataclass
class PairedOverhead:
    """Latency the service adds over its runtime at concurrency 1 (HTTP, JSON, sentence
    splitting, tokenization, the batching scheduler), paired per sentence: each sentence
    is generated offline and sent to the service alternately, so sentence length and
    machine drift cancel out of each difference."""

    target: str
    sentences: int
    repeats: int
    added_p50_ms: float
    added_p25_ms: float
    added_p75_ms: float
    service_p50_ms: float
    offline_p50_ms: float


async def paired_overhead(
    client: httpx.AsyncClient,
    url: str,
    bodies: Sequence[dict[str, Any]],
    offline_seconds: Callable[[int], float],
    sentences: int,
    repeats: int,
    target: str = "",
) -> PairedOverhead:
    """For each of the first ``sentences`` bodies, ``repeats`` times: one offline run of
    sentence i (``offline_seconds(i)``) and one request with it, in alternating order;
    the per-sentence difference of the medians, summarised over sentences. One unpaired
    run of each side warms both up first. A failed request raises."""
    check_loopback(url)

    async def request(i: int) -> float:
        t0 = time.perf_counter()
        response = await client.post(url, json=bodies[i % len(bodies)])
        if response.status_code != 200:
            raise RuntimeError(f"{target}: HTTP {response.status_code}: {response.text[:200]}")
        return time.perf_counter() - t0

    offline_seconds(0)
    await request(0)
    added, service, offline = [], [], []
    for i in range(sentences):
        svc, off = [], []
        for r in range(repeats):
            if r % 2:
                svc.append(await request(i))
                off.append(offline_seconds(i))
            else:
                off.append(offline_seconds(i))
                svc.append(await request(i))
        service.append(statistics.median(svc) * 1000)
        offline.append(statistics.median(off) * 1000)
        added.append(service[-1] - offline[-1])
    return PairedOverhead(
        target=target,
        sentences=sentences,
        repeats=repeats,
        added_p50_ms=percentile(added, 50),
        added_p25_ms=percentile(added, 25),
        added_p75_ms=percentile(added, 75),
        service_p50_ms=percentile(service, 50),
        offline_p50_ms=percentile(offline, 50),
    )


def body(text: str, max_new: int, num_beams: int = 1) -> dict[str, Any]:
    """One ``POST /translate`` body with a fixed output length."""
    return {
        "text": text,
        "source_lang": SOURCE_LANG,
        "target_lang": TARGET_LANG,
        "options": {"max_new_tokens": max_new, "min_new_tokens": max_new, "num_beams": num_beams},
    }


async def sweep(
    base: str,
    target: str,
    args: argparse.Namespace,
    texts: list[str],
    offline: OfflineEngine | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Against one running server: (with ``offline``) the paired latency measurement at
    concurrency 1, then every concurrency level."""
    url = f"{base}/translate"
    bodies = [body(t, args.max_new_tokens, args.num_beams) for t in texts]
    rows = []
    levels = [int(c) for c in args.concurrency.split(",")]
    limits = httpx.Limits(
        max_connections=max(levels) + 8, max_keepalive_connections=max(levels) + 8
    )
    async with httpx.AsyncClient(limits=limits, timeout=args.request_timeout_s) as client:
        # Warm-up: first requests pay for lazy initialisation on both sides.
        await run_level(client, url, bodies, 2, 60.0, 4, args.max_new_tokens, target=target)
        # Paired latency first: after the sweep, requests the last level abandoned may
        # still be decoding in the server.
        paired = None
        if offline is not None and args.paired_sentences > 0:
            result_paired = await paired_overhead(
                client,
                url,
                bodies,
                offline.batch1_seconds,
                args.paired_sentences,
                args.paired_repeats,
                target=target,
            )
            paired = asdict(result_paired)
            print(
                f"  {target:<10} paired c=1: {result_paired.added_p50_ms:+.1f} ms "
                f"(p25 {result_paired.added_p25_ms:+.1f}, p75 {result_paired.added_p75_ms:+.1f})",
                file=sys.stderr,
                flush=True,
            )
        for level in levels:
            before = generated_tokens(base)
            result = await run_level(
                client,
                url,
                bodies,
                level,
                args.duration_s,
                args.max_requests,
                args.max_new_tokens,
                grace_s=args.grace_s,
                target=target,
            )
            after = generated_tokens(base)
            row: dict[str, Any] = asdict(result)
            if before is not None and after is not None:
                row["server_tokens_per_s"] = (after - before) / result.elapsed_s
            rows.append(row)
            print(
                f"  {target:<10} c={level:<4} {result.requests:>5} ok {result.errors:>3} err "
                f"{result.tokens_per_s:>9.1f} tok/s  p50 {result.p50_ms:>8.1f}  "
                f"p99 {result.p99_ms:>8.1f} ms",
                file=sys.stderr,
                flush=True,
            )
    return rows, paired


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add = p.add_argument
    add("--family", default="marian", help="model built when --package is not given")
    add("--size", default="full", choices=["tiny", "full"])
    add("--package", type=Path, help="model package dir (our service; default: built)")
    add("--checkpoint", type=Path, help="its checkpoint dir (the naive baseline)")
    add(
        "--targets",
        default=",".join(TARGETS),
        help=f"comma-separated, from {', '.join(TARGETS)}",
    )
    add("--precision", default="int8")
    add("--threads", type=int, default=1, help="ORT/PyTorch threads of the server")
    add("--concurrency", default="1,4,16,32,64,128")
    add("--duration-s", type=float, default=5.0, help="per level")
    add("--max-requests", type=int, default=2000, help="per level")
    add("--grace-s", type=float, default=20.0, help="wait for running requests after a level")
    add("--request-timeout-s", type=float, default=120.0)
    add("--max-new-tokens", type=int, default=32)
    add("--num-beams", type=int, default=1)
    add("--max-batch-size", type=int, default=64)
    add("--max-queue", type=int, default=1024)
    add("--ready-timeout-s", type=float, default=300.0)
    add("--texts", type=int, default=256)
    add("--paired-sentences", type=int, default=24, help="HTTP latency pairs (0: none)")
    add("--paired-repeats", type=int, default=3, help="runs per sentence and side")
    add("--json", type=Path)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the engine offline, then sweep every target; write the result document."""
    args = _parser().parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    for target in targets:
        if target != "naive":
            try:
                batch_mode(target)
            except ValueError as exc:
                raise SystemExit(str(exc)) from exc
    if args.package is None or ("naive" in targets and args.checkpoint is None):
        from bench.engine import resolve_model

        args.checkpoint, args.package = resolve_model(
            args.family,
            args.size,
            "translation",
            args.checkpoint,
            args.package,
            positioned="continuous" in targets,
        )
    texts = single_sentences(args.texts)
    started = time.time()
    engine = OfflineEngine(
        args.package, args.precision, args.threads, texts, args.max_new_tokens, args.num_beams
    )
    offline = engine.reference(args.max_batch_size)
    print(f"offline engine: {offline}", file=sys.stderr, flush=True)
    rows: list[dict[str, Any]] = []
    paired: list[dict[str, Any]] = []
    for target in targets:
        port = free_port()
        with serve(
            server_command(target, args, port), port, args.threads, args.ready_timeout_s
        ) as base:
            level_rows, pairs = asyncio.run(
                sweep(base, target, args, texts, None if target == "naive" else engine)
            )
        rows += level_rows
        if pairs is not None:
            paired.append(pairs)
    from bench.engine import machine

    document = {
        "kind": "load",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1),
        "machine": machine(),
        "package": str(args.package),
        "precision": args.precision,
        "max_new_tokens": args.max_new_tokens,
        "max_batch_size": args.max_batch_size,
        "num_beams": args.num_beams,
        "threads": args.threads,
        "offline": offline,
        "http_overhead": paired,
        "command": command_line("bench.load", argv),
        "rows": rows,
    }
    write_document(args.json, document)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
