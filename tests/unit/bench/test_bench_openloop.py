"""Open-loop load harness: arrivals, the mix, outcome classification, queue histogram,
report targets (an in-process fake server; no sockets, no model)."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from bench.openloop import (
    KINDS,
    HistogramSnapshot,
    MixRequest,
    build_mix,
    closed_loop,
    level_row,
    paragraphs,
    parse_histogram,
    parse_mix,
    poisson_arrivals,
    run_alone,
    run_open_loop,
    send_plain,
    send_streaming,
    summarize_body,
    translate_body,
)
from bench.openloop_report import section, tables, targets

LINES = [f"Line number {i} of the article." for i in range(40)]
BASE = "http://127.0.0.1"


def test_parse_mix_normalises_and_refuses_unknown_kinds() -> None:
    assert parse_mix("sentence=3,paragraph=1") == {"sentence": 0.75, "paragraph": 0.25}
    assert parse_mix("sentence=1,dialogue=0") == {"sentence": 1.0}
    with pytest.raises(ValueError, match="unknown request kind"):
        parse_mix("sentence=1,poem=1")
    with pytest.raises(ValueError, match="not all 0"):
        parse_mix("sentence=0")


def test_poisson_arrivals_are_seeded_ordered_and_at_the_rate() -> None:
    arrivals = poisson_arrivals(10.0, 200.0, seed=3)
    assert arrivals == poisson_arrivals(10.0, 200.0, seed=3)
    assert arrivals != poisson_arrivals(10.0, 200.0, seed=4)
    assert arrivals == sorted(arrivals) and arrivals[0] > 0 and arrivals[-1] < 200.0
    assert abs(len(arrivals) - 2000) < 200  # Poisson: sd = sqrt(2000) ~ 45
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # Exponential gaps: the sd equals the mean (fixed intervals would give sd 0).
    mean = sum(gaps) / len(gaps)
    sd = math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps))
    assert 0.8 < sd / mean < 1.2
    with pytest.raises(ValueError):
        poisson_arrivals(0.0, 1.0, seed=1)


def test_paragraphs_are_three_to_six_consecutive_lines() -> None:
    for paragraph in paragraphs(LINES, 50, seed=1):
        numbers = [int(part.split()[0]) for part in paragraph.split("number ")[1:]]
        assert 3 <= len(numbers) <= 6
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))


def test_build_mix_draws_kinds_with_their_shares_and_routes() -> None:
    shares = {"sentence": 0.6, "paragraph": 0.3, "dialogue": 0.1}
    mix = build_mix(shares, 1000, ["One sentence."], LINES, ["A: hi\nB: hello"], seed=5)
    counts = {kind: sum(r.kind == kind for r in mix) for kind in KINDS}
    assert abs(counts["sentence"] - 600) < 60 and abs(counts["dialogue"] - 100) < 35
    for request in mix:
        assert request.route == ("/summarize" if request.kind == "dialogue" else "/translate")
        assert request.body["stream"] is True
        options = request.body["options"]
        assert isinstance(options, dict) and "min_new_tokens" not in options
    assert mix == build_mix(shares, 1000, ["One sentence."], LINES, ["A: hi\nB: hello"], seed=5)


def _fake_server(delay_s: float) -> FastAPI:
    """Streams two pieces for /translate, rejects texts saying "busy", fails "broken"."""
    app = FastAPI()

    @app.post("/translate", response_model=None)
    async def translate(body: dict[str, Any]) -> JSONResponse | StreamingResponse:
        text = str(body["text"])
        if "busy" in text:
            return JSONResponse({"error": {"type": "queue_full"}}, status_code=429)

        async def events() -> AsyncIterator[str]:
            await asyncio.sleep(delay_s)
            yield 'data: {"index": 0, "delta": "Ein"}\n\n'
            if "broken" in text:
                yield 'data: {"error": {"type": "internal"}}\n\n'
                return
            await asyncio.sleep(delay_s)
            yield 'data: {"index": 0, "delta": " Mann"}\n\n'
            yield 'data: {"done": true}\n\ndata: [DONE]\n\n'

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def _client(delay_s: float = 0.01) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=_fake_server(delay_s)))


async def test_send_streaming_times_the_first_piece_and_the_end() -> None:
    async with _client() as client:
        ok = await send_streaming(
            client, BASE, MixRequest("sentence", "/translate", translate_body("A man."))
        )
        busy = await send_streaming(
            client, BASE, MixRequest("sentence", "/translate", translate_body("busy"))
        )
        broken = await send_streaming(
            client, BASE, MixRequest("paragraph", "/translate", translate_body("broken"))
        )
    assert ok.ok and ok.first_piece_s is not None and ok.latency_s is not None
    assert 0 < ok.first_piece_s <= ok.latency_s
    assert (busy.status, busy.error, busy.ok) == (429, "queue_full", False)
    assert (broken.status, broken.error, broken.ok) == (200, "internal", False)


async def test_open_loop_keeps_sending_and_counts_what_did_not_finish() -> None:
    requests = [
        MixRequest("sentence", "/translate", translate_body("A man.")),
        MixRequest("sentence", "/translate", translate_body("busy")),
    ]
    arrivals = [0.0, 0.01, 0.02, 0.03]
    async with _client(delay_s=0.05) as client:
        outcomes, unfinished, span = await run_open_loop(client, BASE, requests, arrivals, 5.0)
    assert (len(outcomes), unfinished) == (4, 0)
    assert sum(o.ok for o in outcomes) == 2 and sum(o.status == 429 for o in outcomes) == 2
    # Open loop: the sends did not wait for the 0.1 s answers before them.
    sends = sorted(o.sent_at for o in outcomes)
    assert sends[-1] - sends[0] < 0.1 and span > 0.09
    async with _client(delay_s=1.0) as client:
        outcomes, unfinished, _ = await run_open_loop(client, BASE, requests[:1], [0.0], 0.2)
    assert (outcomes, unfinished) == ([], 1)


async def test_closed_loop_sends_in_turn_until_the_deadline_plain_or_streamed() -> None:
    requests = [
        MixRequest("sentence", "/translate", translate_body("A man.")),
        MixRequest("sentence", "/translate", translate_body("busy")),
    ]
    async with _client(delay_s=0.005) as client:
        plain, elapsed = await closed_loop(client, BASE, requests, 2, 0.2, send_plain)
        streamed, _ = await closed_loop(client, BASE, requests, 2, 0.2)
    for outcomes in (plain, streamed):
        assert {o.status for o in outcomes} == {200, 429}
        assert all(o.ok == (o.status == 200) for o in outcomes)
    assert elapsed >= 0.2
    assert all(o.first_piece_s is None for o in plain)  # no stream was read
    assert any(o.first_piece_s is not None for o in streamed)


def test_queue_histogram_quantiles_follow_the_buckets() -> None:
    registry = CollectorRegistry()
    histogram = Histogram(
        "s2s_queue_wait_seconds", "q", ["model"], buckets=(0.1, 1.0, 10.0), registry=registry
    )
    before = parse_histogram(generate_latest(registry).decode(), "s2s_queue_wait_seconds")
    for value in [0.05] * 50 + [0.5] * 40 + [5.0] * 10:
        histogram.labels(model="a" if value < 1 else "b").observe(value)
    after = parse_histogram(generate_latest(registry).decode(), "s2s_queue_wait_seconds")
    delta = after.minus(before)
    assert delta.count == 100 and math.isclose(delta.total, 2.5 + 20 + 50)
    assert math.isclose(delta.quantile(0.5), 0.1)  # rank 50 closes the first bucket
    assert math.isclose(delta.quantile(0.7), 0.1 + 0.9 * 0.5)  # halfway into (0.1, 1]
    assert 1.0 < delta.quantile(0.99) <= 10.0
    assert math.isnan(HistogramSnapshot({}, 0.0, 0.0).quantile(0.5))


def _row(
    target: str, share: float, round_index: int, p99: float, ttft: float, done: float
) -> dict[str, Any]:
    return {
        "target": target,
        "round": round_index,
        "load_share": share,
        "rate_per_s": 4 * share,
        "offered": 100,
        "throughput_per_s": done,
        "p50_ms": p99 / 2,
        "p99_ms": p99,
        "ttft_p50_ms": ttft / 2,
        "ttft_p99_ms": ttft,
        "queue_mean_ms": 1.0,
        "queue_p99_ms": 2.0,
        "rejected_share": 0.0,
        "failed": 0,
        "unfinished": 0,
    }


def test_level_row_tells_rejected_from_failed() -> None:
    from bench.openloop import Outcome

    outcomes = [
        Outcome("sentence", 200, 0.0, 0.1, 0.5),
        Outcome("paragraph", 200, 0.0, 0.2, 2.0),
        Outcome("sentence", 429, 0.0, error="queue_full"),
        Outcome("dialogue", 504, 0.0, error="timeout"),
        Outcome("sentence", 200, 0.0, 0.1, None, error="internal"),
    ]
    row = level_row("dynamic", 0, 0.75, 3.0, 6, outcomes, 1, 2.0, HistogramSnapshot({}, 0.0, 0.0))
    assert (row["completed"], row["rejected"], row["failed"], row["unfinished"]) == (2, 1, 2, 1)
    assert row["rejected_share"] == 1 / 6 and row["throughput_per_s"] == 1.0
    assert row["errors"] == {"queue_full": 1, "timeout": 1, "internal": 1}
    by_kind = row["p99_ms_by_kind"]
    assert isinstance(by_kind, dict) and by_kind["paragraph"] == 2000.0


def _document(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "command": "python -m bench.openloop",
        "started": "2026-12-02T03:00:00Z",
        "duration_s": 600.0,
        "machine": {"cpu": "test cpu", "cores": 2},
        "mix": {"sentence": 0.7, "paragraph": 0.3},
        "sources": {"wmt14": "built-in"},
        "packages": ["full-marian"],
        "capacity_per_s": 4.0,
        "capacity_reference": "dynamic",
        "settings": {"precision": "int8", "threads": 2, "rounds": 2},
        "rows": rows,
    }


def test_targets_are_judged_on_the_worst_round(tmp_path: Path) -> None:
    rows = []
    for round_index, (p99, ttft) in enumerate([(400.0, 100.0), (600.0, 200.0)]):
        rows += [
            _row("dynamic", 0.75, round_index, 1000.0, 1000.0, 3.0),
            _row("continuous", 0.75, round_index, p99, ttft, 3.0),
            _row("dynamic", 1.1, round_index, 1000.0, 1000.0, 4.0),
            _row("continuous", 1.1, round_index, p99, ttft, 4.4),
        ]
    lines = targets(_document(rows))
    assert lines[0].startswith("continuous p99") and "MISSED (worst round 0.60x" in lines[0]
    assert "met (worst round 0.20x" in lines[1]
    assert "met (worst round 1.10x" in lines[2]
    table = tables(_document(rows))
    assert "| continuous | 3.00 | 250 [200-300] | 500 [400-600] |" in table
    text = section(_document(rows), tmp_path, tmp_path / "plots")
    assert (tmp_path / "plots" / "openloop.png").is_file() and "continuous p99" in text


def test_the_floor_compares_requests_alone_with_the_baselines_p99(tmp_path: Path) -> None:
    rows = [
        _row("dynamic", 0.75, 0, 1000.0, 1000.0, 3.0),
        _row("continuous", 0.75, 0, 900.0, 200.0, 3.0),
        _row("continuous", 0.0, 0, 700.0, 100.0, 1.5),
        _row("dynamic", 1.1, 0, 1000.0, 1000.0, 4.0),
        _row("continuous", 1.1, 0, 900.0, 200.0, 4.0),
    ]
    lines = targets(_document(rows))
    assert lines[-1].startswith("floor: continuous one request at a time")
    assert "700 ms = 0.70x" in lines[-1] and "below the floor" in lines[-1]
    rows[2]["p99_ms"] = 400.0
    assert "0.40x (the 0.5x target is above the floor)" in targets(_document(rows))[-1]
    assert "**One request at a time** (100-100 requests" in tables(_document(rows))
    section(_document(rows), tmp_path, tmp_path / "plots")  # the plot leaves the floor out


async def test_run_alone_sends_one_request_after_the_other() -> None:
    requests = [MixRequest("sentence", "/translate", translate_body(f"A man {i}.")) for i in (1, 2)]
    async with _client(0.005) as client:
        outcomes, span = await run_alone(client, BASE, requests, 3)
    assert len(outcomes) == 3 and all(o.ok for o in outcomes)
    for earlier, later in itertools.pairwise(outcomes):
        assert earlier.latency_s is not None
        assert later.sent_at >= earlier.sent_at + earlier.latency_s  # never two at once
    assert span >= sum(o.latency_s or 0.0 for o in outcomes)


def test_summarize_body_streams_greedy_without_forced_length() -> None:
    body = summarize_body("A: hi\nB: hello")
    assert json.loads(json.dumps(body)) == {
        "text": "A: hi\nB: hello",
        "stream": True,
        "options": {"num_beams": 1},
    }


def test_one_target_gets_one_table_with_a_row_per_level_and_no_unmeasured_targets(
    tmp_path: Path,
) -> None:
    rows = [
        _row("dynamic", share, round_index, 100.0 * (1 + share), 50.0, 3.0)
        for share in (0.25, 1.1)
        for round_index in (0, 1)
    ]
    table = tables(_document(rows))
    assert table.count("| load |") == 1
    assert "| 25% |" in table and "| 110% |" in table
    text = section(_document(rows), tmp_path, tmp_path / "plots")
    assert "Targets" not in text and "not measured" not in text
