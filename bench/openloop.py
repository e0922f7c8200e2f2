"""Open-loop load on a realistic request mix: Poisson arrivals, mixed lengths, natural stopping.

``python -m bench.openloop --json .cache/bench/openloop.json`` (in ``make bench``).

The closed-loop sweep of ``bench.load`` is kind to batching that waits: every client sends
its next request only after the last one answered, and every request is one sentence with
the same forced length. Users bring something else, and this harness measures that:

- **Arrivals** are open-loop: a seeded Poisson process at a share (25 / 50 / 75 / 90 /
  110 %) of the *capacity* measured first (requests/s the reference target, ``dynamic``,
  completes on the same mix with 64 closed-loop clients). An arrival is sent at its time
  whether or not earlier ones were answered.
- **The mix** is drawn from real data: single WMT14 sentences and paragraphs of 3-6
  consecutive WMT14 lines for ``/translate`` (the service splits a paragraph into
  sentences), SAMSum test dialogues for ``/summarize``. Generation stops naturally (no
  ``min_new_tokens``), greedy, so every request streams token by token where the target
  can.
- **Every request streams** (SSE): the time to the first non-empty piece is the time to
  first token (TTFT); the time to ``[DONE]`` is the latency. Queue time comes from the
  server's ``s2s_queue_wait_seconds`` histogram (mean, and p50 / p99 estimated from its
  buckets as Prometheus' ``histogram_quantile`` does). A 429 / 503 answer counts as
  rejected, any other failure (a 504 past the default deadline, a broken stream) as failed,
  a request still running ``--drain-s`` after the last arrival as unfinished.
- **Targets** side by side in one run: the service's batch modes ``continuous`` (rows at
  any step share each decoder call; needs packages exported with ``--positioned``, which
  this harness builds) and ``dynamic``. Each target gets the same arrival
  times and the same request sequence per level; ``--rounds`` repeats the whole grid with
  the target order reversed every other round (``bench.rounds.round_order``).

The report (``bench.openloop_report``) writes the tables, the issue's targets and a plot
into docs/benchmarks.md (section ``openloop``) and docs/benchmarks/openloop.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from bench.documents import command_line, write_document
from bench.load import (
    batch_mode,
    check_loopback,
    free_port,
    percentile,
    serve,
    service_command,
    service_default,
)
from bench.rounds import round_order

TARGETS = ("continuous", "dynamic")
REFERENCE_TARGET = "dynamic"
LOAD_SHARES = (0.25, 0.5, 0.75, 0.9, 1.1)
DEFAULT_MIX = "sentence=0.6,paragraph=0.3,dialogue=0.1"
KINDS = ("sentence", "paragraph", "dialogue")
REJECTED_STATUSES = frozenset({429, 503})
PARAGRAPH_LINES = (3, 6)
SOURCE_LANG, TARGET_LANG = "en", "de"
QUEUE_METRIC = "s2s_queue_wait_seconds"
# The load share recorded for the one-request-at-a-time run (``--alone-requests``).
ALONE_SHARE = 0.0


@dataclass(frozen=True)
class MixRequest:
    """One request of the mix: its kind, route and JSON body."""

    kind: str
    route: str
    body: dict[str, object]


@dataclass
class Outcome:
    """What one request got: HTTP status (0: transport failure), times in seconds from
    its send, and the error type when it failed."""

    kind: str
    status: int
    sent_at: float
    first_piece_s: float | None = None
    latency_s: float | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        """Answered 200 and streamed to its end without an error event."""
        return self.status == 200 and self.latency_s is not None and not self.error


def parse_mix(text: str) -> dict[str, float]:
    """``"sentence=0.6,paragraph=0.3,dialogue=0.1"`` -> normalised shares per kind."""
    shares: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, value = part.partition("=")
        if kind not in KINDS:
            raise ValueError(f"unknown request kind {kind!r}; choose from {', '.join(KINDS)}")
        shares[kind] = float(value)
    total = sum(shares.values())
    if total <= 0 or any(v < 0 for v in shares.values()):
        raise ValueError(f"mix {text!r}: shares must be >= 0 and not all 0")
    return {kind: value / total for kind, value in shares.items() if value > 0}


def paragraphs(lines: Sequence[str], count: int, seed: int) -> list[str]:
    """``count`` paragraphs of 3-6 consecutive lines (news lines in file order belong to
    one article, so a paragraph reads like one)."""
    rng = random.Random(seed)
    low, high = PARAGRAPH_LINES
    picked = []
    for _ in range(count):
        size = rng.randint(low, high)
        start = rng.randrange(0, max(1, len(lines) - size))
        picked.append(" ".join(lines[start : start + size]))
    return picked


def translate_body(text: str) -> dict[str, object]:
    """A streaming, greedy, naturally stopping ``/translate`` body."""
    return {
        "text": text,
        "source_lang": SOURCE_LANG,
        "target_lang": TARGET_LANG,
        "stream": True,
        "options": {"num_beams": 1},
    }


def summarize_body(text: str) -> dict[str, object]:
    """A streaming, greedy, naturally stopping ``/summarize`` body."""
    return {"text": text, "stream": True, "options": {"num_beams": 1}}


def build_mix(
    shares: dict[str, float],
    count: int,
    sentences: Sequence[str],
    lines: Sequence[str],
    dialogues: Sequence[str],
    seed: int,
) -> list[MixRequest]:
    """``count`` requests whose kinds are drawn with ``shares`` (seeded)."""
    rng = random.Random(seed)
    kinds = rng.choices(list(shares), weights=list(shares.values()), k=count)
    built_paragraphs = paragraphs(lines, kinds.count("paragraph"), seed + 1)
    requests = []
    for i, kind in enumerate(kinds):
        if kind == "sentence":
            requests.append(
                MixRequest(kind, "/translate", translate_body(sentences[i % len(sentences)]))
            )
        elif kind == "paragraph":
            requests.append(MixRequest(kind, "/translate", translate_body(built_paragraphs.pop())))
        else:
            requests.append(
                MixRequest(kind, "/summarize", summarize_body(dialogues[i % len(dialogues)]))
            )
    return requests


def poisson_arrivals(rate_per_s: float, duration_s: float, seed: int) -> list[float]:
    """Send times (seconds from the level's start) of a seeded Poisson process."""
    if rate_per_s <= 0:
        raise ValueError(f"rate must be > 0, got {rate_per_s}")
    rng = random.Random(seed)
    times: list[float] = []
    now = 0.0
    while True:
        now += rng.expovariate(rate_per_s)
        if now >= duration_s:
            return times
        times.append(now)


async def send_streaming(client: httpx.AsyncClient, base: str, request: MixRequest) -> Outcome:
    """Send one streaming request and time its first piece and its end."""
    started = time.perf_counter()
    outcome = Outcome(request.kind, 0, started)
    try:
        async with client.stream("POST", base + request.route, json=request.body) as response:
            outcome.status = response.status_code
            if response.status_code != 200:
                await response.aread()
                outcome.error = _error_type(response)
                return outcome
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                payload = line[len("data: ") :]
                if payload == "[DONE]":
                    outcome.latency_s = time.perf_counter() - started
                    break
                event = json.loads(payload)
                if "error" in event:
                    outcome.error = str(event["error"].get("type", "stream_error"))
                    break
                if event.get("delta") and outcome.first_piece_s is None:
                    outcome.first_piece_s = time.perf_counter() - started
    except httpx.HTTPError as exc:
        outcome.error = type(exc).__name__
    return outcome


def _error_type(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["type"])
    except (ValueError, KeyError, TypeError):
        return f"http_{response.status_code}"


T = TypeVar("T")


async def started_at(
    arrivals: Sequence[float], start: Callable[[int], Coroutine[Any, Any, T]]
) -> list[asyncio.Task[T]]:
    """Start ``start(i)`` at ``arrivals[i]`` seconds from now (an open loop: whether or
    not earlier ones finished); returns the tasks once the last is started."""
    began = time.perf_counter()
    tasks: list[asyncio.Task[T]] = []
    for i, at in enumerate(arrivals):
        delay = began + at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(start(i)))
    return tasks


async def run_open_loop(
    client: httpx.AsyncClient,
    base: str,
    requests: Sequence[MixRequest],
    arrivals: Sequence[float],
    drain_s: float,
) -> tuple[list[Outcome], int, float]:
    """Send ``requests[i]`` at ``arrivals[i]``; wait up to ``drain_s`` after the last
    arrival. Returns the finished outcomes, the count cancelled unfinished, and the
    seconds from the first send to the last answer."""
    check_loopback(base)
    start = time.perf_counter()
    tasks = await started_at(
        arrivals, lambda i: send_streaming(client, base, requests[i % len(requests)])
    )
    done, pending = await asyncio.wait(tasks, timeout=drain_s) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    outcomes = [t.result() for t in tasks if t in done]
    ends = [o.sent_at + o.latency_s for o in outcomes if o.latency_s is not None]
    span = (max(ends) if ends else time.perf_counter()) - start
    return outcomes, len(pending), span


async def run_alone(
    client: httpx.AsyncClient, base: str, requests: Sequence[MixRequest], count: int
) -> tuple[list[Outcome], float]:
    """Send ``requests[:count]`` one after another (the next only after the last answered):
    each latency is that request's own, with the server to itself. Returns the outcomes and
    the seconds they took."""
    check_loopback(base)
    start = time.perf_counter()
    outcomes = [
        await send_streaming(client, base, requests[i % len(requests)]) for i in range(count)
    ]
    return outcomes, time.perf_counter() - start


async def send_plain(client: httpx.AsyncClient, base: str, request: MixRequest) -> Outcome:
    """Send one request without streaming (``"stream": false``) and time its answer."""
    started = time.perf_counter()
    outcome = Outcome(request.kind, 0, started)
    try:
        response = await client.post(base + request.route, json={**request.body, "stream": False})
    except httpx.HTTPError as exc:
        outcome.error = type(exc).__name__
        return outcome
    outcome.status = response.status_code
    if response.status_code == 200:
        outcome.latency_s = time.perf_counter() - started
    else:
        outcome.error = _error_type(response)
    return outcome


Send = Callable[[httpx.AsyncClient, str, MixRequest], Awaitable[Outcome]]


async def closed_loop(
    client: httpx.AsyncClient,
    base: str,
    requests: Sequence[MixRequest],
    concurrency: int,
    duration_s: float,
    send: Send = send_streaming,
) -> tuple[list[Outcome], float]:
    """``concurrency`` closed-loop clients sending ``requests`` in turn with ``send`` for
    ``duration_s``: every outcome, and the seconds they took."""
    outcomes: list[Outcome] = []
    stop_at = time.perf_counter() + duration_s

    async def worker(index: int) -> None:
        i = index
        while time.perf_counter() < stop_at:
            outcomes.append(await send(client, base, requests[i % len(requests)]))
            i += concurrency

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return outcomes, time.perf_counter() - start


async def closed_loop_capacity(
    client: httpx.AsyncClient,
    base: str,
    requests: Sequence[MixRequest],
    concurrency: int,
    duration_s: float,
) -> float:
    """Requests/s completed by ``concurrency`` closed-loop clients on the mix."""
    outcomes, elapsed = await closed_loop(client, base, requests, concurrency, duration_s)
    return sum(o.ok for o in outcomes) / elapsed


@dataclass(frozen=True)
class HistogramSnapshot:
    """Cumulative bucket counts (upper bound -> count), sum and count of one histogram."""

    buckets: dict[float, float]
    total: float
    count: float

    def minus(self, earlier: HistogramSnapshot) -> HistogramSnapshot:
        """The observations made between ``earlier`` and this snapshot."""
        return HistogramSnapshot(
            {le: n - earlier.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            self.total - earlier.total,
            self.count - earlier.count,
        )

    def quantile(self, q: float) -> float:
        """Prometheus' ``histogram_quantile``: linear within the bucket holding rank q."""
        if self.count <= 0:
            return float("nan")
        rank = q * self.count
        lower_bound, lower_count = 0.0, 0.0
        for upper in sorted(self.buckets):
            cumulative = self.buckets[upper]
            if cumulative >= rank:
                if math.isinf(upper):
                    return lower_bound
                width = cumulative - lower_count
                share = (rank - lower_count) / width if width > 0 else 0.0
                return lower_bound + (upper - lower_bound) * share
            lower_bound, lower_count = upper, cumulative
        return lower_bound


def parse_histogram(metrics_text: str, name: str) -> HistogramSnapshot:
    """Sum one histogram over its label sets from a Prometheus text exposition."""
    buckets: dict[float, float] = {}
    total = count = 0.0
    for line in metrics_text.splitlines():
        if not line.startswith(name):
            continue
        key, _, value = line.rpartition(" ")
        if key.startswith(f"{name}_bucket"):
            le_text = key.split('le="', 1)[1].split('"', 1)[0]
            le = math.inf if le_text == "+Inf" else float(le_text)
            buckets[le] = buckets.get(le, 0.0) + float(value)
        elif key.startswith(f"{name}_sum"):
            total += float(value)
        elif key.startswith(f"{name}_count"):
            count += float(value)
    return HistogramSnapshot(buckets, total, count)


async def queue_histogram(client: httpx.AsyncClient, base: str) -> HistogramSnapshot:
    """The server's queue-wait histogram now."""
    response = await client.get(f"{base}/metrics")
    return parse_histogram(response.text, QUEUE_METRIC)


def level_row(
    target: str,
    round_index: int,
    share: float,
    rate: float,
    offered: int,
    outcomes: Sequence[Outcome],
    unfinished: int,
    span_s: float,
    queue: HistogramSnapshot,
) -> dict[str, object]:
    """One (target, load level) row of the result document."""
    ok = [o for o in outcomes if o.ok]
    rejected = [o for o in outcomes if o.status in REJECTED_STATUSES]
    failed = [o for o in outcomes if not o.ok and o.status not in REJECTED_STATUSES]
    latencies = [o.latency_s * 1000 for o in ok if o.latency_s is not None]
    ttfts = [o.first_piece_s * 1000 for o in ok if o.first_piece_s is not None]
    by_kind = {
        kind: percentile([o.latency_s * 1000 for o in ok if o.kind == kind and o.latency_s], 99)
        for kind in KINDS
    }
    errors: dict[str, int] = {}
    for o in failed + rejected:
        errors[o.error or f"http_{o.status}"] = errors.get(o.error or f"http_{o.status}", 0) + 1
    return {
        "target": target,
        "round": round_index,
        "load_share": share,
        "rate_per_s": round(rate, 3),
        "offered": offered,
        "completed": len(ok),
        "rejected": len(rejected),
        "failed": len(failed),
        "unfinished": unfinished,
        "rejected_share": len(rejected) / offered if offered else 0.0,
        "throughput_per_s": len(ok) / span_s if span_s > 0 else 0.0,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "ttft_p50_ms": percentile(ttfts, 50),
        "ttft_p99_ms": percentile(ttfts, 99),
        "p99_ms_by_kind": by_kind,
        "queue_mean_ms": queue.total / queue.count * 1000 if queue.count else float("nan"),
        "queue_p50_ms": queue.quantile(0.5) * 1000,
        "queue_p99_ms": queue.quantile(0.99) * 1000,
        "errors": errors,
    }


@dataclass(frozen=True)
class Plan:
    """What every level of every target runs."""

    requests: list[MixRequest]
    capacity_per_s: float
    shares: tuple[float, ...]
    duration_s: float
    drain_s: float
    seed: int

    def arrivals(self, share: float, round_index: int) -> list[float]:
        """The level's send times: the same for every target of a round."""
        seed = self.seed + round_index * 1000 + int(share * 100)
        return poisson_arrivals(share * self.capacity_per_s, self.duration_s, seed)


def _limits(connections: int) -> httpx.Limits:
    return httpx.Limits(max_connections=connections, max_keepalive_connections=connections)


async def warm_up(client: httpx.AsyncClient, base: str, requests: Sequence[MixRequest]) -> None:
    """One request of each kind (lazy initialisation on both sides)."""
    seen: dict[str, MixRequest] = {}
    for request in requests:
        seen.setdefault(request.kind, request)
    for request in seen.values():
        await send_streaming(client, base, request)


async def measure_capacity(
    base: str, plan_requests: Sequence[MixRequest], args: argparse.Namespace
) -> float:
    """The reference target's closed-loop capacity (requests/s) on the mix."""
    async with httpx.AsyncClient(
        limits=_limits(args.capacity_clients + 8), timeout=args.request_timeout_s
    ) as client:
        await warm_up(client, base, plan_requests)
        return await closed_loop_capacity(
            client, base, plan_requests, args.capacity_clients, args.capacity_s
        )


async def run_target(
    base: str, target: str, round_index: int, plan: Plan, args: argparse.Namespace
) -> list[dict[str, object]]:
    """Every load level against one running server."""
    rows = []
    connections = (
        int(max(plan.shares) * plan.capacity_per_s * (plan.duration_s + plan.drain_s)) + 64
    )
    async with httpx.AsyncClient(
        limits=_limits(connections), timeout=args.request_timeout_s
    ) as client:
        await warm_up(client, base, plan.requests)
        if args.alone_requests > 0:
            before = await queue_histogram(client, base)
            outcomes, span = await run_alone(client, base, plan.requests, args.alone_requests)
            queue = (await queue_histogram(client, base)).minus(before)
            rows.append(
                level_row(
                    target, round_index, ALONE_SHARE, 0.0, len(outcomes), outcomes, 0, span, queue
                )
            )
        for share in plan.shares:
            arrivals = plan.arrivals(share, round_index)
            before = await queue_histogram(client, base)
            outcomes, unfinished, span = await run_open_loop(
                client, base, plan.requests, arrivals, plan.duration_s + plan.drain_s
            )
            queue = (await queue_histogram(client, base)).minus(before)
            row = level_row(
                target,
                round_index,
                share,
                share * plan.capacity_per_s,
                len(arrivals),
                outcomes,
                unfinished,
                span,
                queue,
            )
            rows.append(row)
            print(
                f"  r{round_index} {target:<10} {share:>4.0%} "
                f"{row['completed']:>4}/{row['offered']:<4} ok "
                f"rej {row['rejected']:<3} fail {row['failed']:<3} p50 {row['p50_ms']:>7.0f} "
                f"p99 {row['p99_ms']:>7.0f} ttft p99 {row['ttft_p99_ms']:>7.0f} ms",
                file=sys.stderr,
                flush=True,
            )
            await asyncio.sleep(args.pause_s)
    return rows


def mix_packages(args: argparse.Namespace, dialogues: bool) -> tuple[Path, list[str]]:
    """A folder of links to the translation (and summarization) packages, built with the
    positioned decoder when not given."""
    from bench.engine import resolve_model

    translation = (
        args.package or resolve_model("marian", args.size, "translation", positioned=True)[1]
    )
    packages = [Path(translation)]
    if dialogues:
        summarization = (
            args.summarize_package
            or resolve_model("bart", "tiny", "summarization", positioned=True)[1]
        )
        packages.append(Path(summarization))
    folder = Path(tempfile.mkdtemp(prefix="openloop-models-"))
    names = []
    for package in packages:
        (folder / package.name).symlink_to(package.resolve(), target_is_directory=True)
        names.append(package.name)
    return folder, names


def load_mix(
    args: argparse.Namespace, shares: dict[str, float]
) -> tuple[list[MixRequest], dict[str, str]]:
    """The request sequence and where its texts came from."""
    from bench.inputs import summarization_texts
    from bench.load import single_sentences

    lines, wmt_source = wmt_lines(args.texts)
    dialogues = summarization_texts(args.texts)
    requests = build_mix(
        shares, args.texts, single_sentences(args.texts), lines, dialogues.texts, args.seed
    )
    return requests, {"wmt14": wmt_source, "samsum": dialogues.source}


def wmt_lines(count: int) -> tuple[list[str], str]:
    """WMT14 source lines in file order (consecutive lines belong to one article, what
    :func:`paragraphs` needs), and where they came from (the built-in sentences without
    the data)."""
    from bench.inputs import read_lines, translation_texts

    wmt = translation_texts(count)
    lines = read_lines(Path(wmt.source)) if wmt.source != "built-in" else wmt.texts
    return lines, wmt.source


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add = p.add_argument
    add(
        "--size",
        default="full",
        choices=["tiny", "full"],
        help="the Marian built when no --package",
    )
    add("--package", type=Path, help="translation package exported with --positioned")
    add("--summarize-package", type=Path, help="summarization package (default: tiny BART, built)")
    add("--targets", default=",".join(TARGETS))
    add("--mix", default=DEFAULT_MIX, help="request kinds and their shares")
    add("--loads", default=",".join(str(s) for s in LOAD_SHARES), help="shares of capacity")
    add("--capacity", type=float, help="requests/s taken as 100 %% (default: measured)")
    add("--capacity-clients", type=int, default=64)
    add("--capacity-s", type=float, default=30.0)
    add("--duration-s", type=float, default=30.0, help="arrivals per level")
    add("--drain-s", type=float, default=60.0, help="wait for answers after the last arrival")
    add("--pause-s", type=float, default=2.0, help="idle time between levels")
    add("--rounds", type=int, default=1)
    add(
        "--alone-requests",
        type=int,
        default=0,
        help="first send this many requests of the mix one at a time, per target (the "
        "latency floor: each request with the server to itself; 0: skip)",
    )
    add("--precision", default="int8")
    add("--threads", type=int, default=2, help="ORT threads of the server")
    add("--max-batch-size", type=int, default=service_default("max_batch_size"))
    add("--max-queue", type=int, default=service_default("max_queue"))
    add("--request-timeout-s", type=float, default=300.0)
    add("--ready-timeout-s", type=float, default=300.0)
    add("--texts", type=int, default=512)
    add("--seed", type=int, default=17)
    add("--json", type=Path)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Measure capacity, then every target at every load level; write the document."""
    args = _parser().parse_args(argv)
    targets = [t for t in (s.strip() for s in args.targets.split(",")) if t]
    for target in targets:
        try:
            batch_mode(target)
        except ValueError as exc:
            raise SystemExit(str(exc)) from exc
    shares = parse_mix(args.mix)
    started = time.time()
    requests, sources = load_mix(args, shares)
    models_dir, names = mix_packages(args, "dialogue" in shares)
    load_shares = tuple(float(s) for s in args.loads.split(","))

    def running(target: str) -> AbstractContextManager[str]:
        port = free_port()
        return serve(
            service_command(
                port,
                models_dir,
                names,
                batch_mode(target),
                args.precision,
                args.max_batch_size,
                ("--max-queue", str(args.max_queue)),
            ),
            port,
            args.threads,
            args.ready_timeout_s,
        )

    capacity = args.capacity
    if capacity is None:
        with running(REFERENCE_TARGET) as base:
            capacity = asyncio.run(measure_capacity(base, requests, args))
        print(
            f"capacity ({REFERENCE_TARGET}, {args.capacity_clients} closed-loop clients): "
            f"{capacity:.2f} req/s",
            file=sys.stderr,
        )
    plan = Plan(requests, capacity, load_shares, args.duration_s, args.drain_s, args.seed)
    rows: list[dict[str, object]] = []
    for round_index in range(args.rounds):
        for target in round_order(targets, round_index):
            with running(target) as base:
                rows += asyncio.run(run_target(base, target, round_index, plan, args))
    from bench.engine import machine

    document = {
        "kind": "openloop",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1),
        "machine": machine(),
        "packages": names,
        "sources": sources,
        "mix": shares,
        "capacity_per_s": capacity,
        "capacity_reference": REFERENCE_TARGET,
        "settings": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "json"
        },
        "command": command_line("bench.openloop", argv),
        "rows": rows,
    }
    write_document(args.json, document)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
