"""The real service over real HTTP: every task, streaming, batching exactness, errors."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from tests_e2e_support import SENTENCES, sse_events

pytestmark = pytest.mark.slow

T = {"source_lang": "en", "target_lang": "de"}


def _err(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"} and {"type", "message"} <= set(body["error"]), body
    return dict(body["error"])


def test_models_ready_and_described(server: Any) -> None:
    with server.client() as c:
        ready = c.get("/ready")
        models = {m["name"]: m for m in c.get("/models").json()["models"]}
        health = c.get("/health")
    assert health.status_code == 200 and ready.status_code == 200
    assert set(models) == {"tiny-marian", "tiny-bart", "tiny-blenderbot"}
    assert models["tiny-marian"]["task"] == "translation"
    assert models["tiny-bart"]["task"] == "summarization"
    assert models["tiny-blenderbot"]["task"] == "chat"
    for m in models.values():
        assert m["state"] == "ready"
        assert m["precision"] == "fp32" and m["provider"] == "CPUExecutionProvider"
    assert "en" in models["tiny-marian"]["languages"]["source"]


def test_translate_keeps_layout_and_order(server: Any) -> None:
    text = "A man rides a bike.  Two dogs play.\n\nA woman sings.\n"
    with server.client() as c:
        r = c.post(
            "/translate",
            json={"text": [text, "A child runs."], **T},
            headers={"X-Request-ID": "e2e-layout-1"},
        )
        parts = [
            c.post("/translate", json={"text": s, **T}).json()["translations"][0]
            for s in ("A man rides a bike.", "Two dogs play.", "A woman sings.")
        ]
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == "e2e-layout-1"
    body = r.json()
    assert body["model"] == "tiny-marian" and len(body["translations"]) == 2
    # Sentence by sentence, re-joined with the original spacing and paragraph break.
    assert body["translations"][0] == f"{parts[0]}  {parts[1]}\n\n{parts[2]}\n"


def _concurrent(server: Any, path: str, payloads: list[dict[str, Any]]) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=server.url, timeout=300, limits=limits) as c:
            return list(await asyncio.gather(*(c.post(path, json=p) for p in payloads)))

    return asyncio.run(run())


def _assert_batching_exact(srv: Any, options: dict[str, Any]) -> None:
    payloads = [{"text": s, **T, "options": options} for s in SENTENCES[:64]]
    together = _concurrent(srv, "/translate", payloads)
    with srv.client() as c:
        alone = [c.post("/translate", json=p).json()["translations"][0] for p in payloads]
    assert all(r.status_code == 200 for r in together)
    assert [r.json()["translations"][0] for r in together] == alone
    assert len(set(alone)) > 16, "outputs depend on the inputs"


@pytest.mark.parametrize("options", [{"num_beams": 1}, {"num_beams": 4}], ids=["greedy", "beam4"])
def test_64_concurrent_requests_equal_single_results(server: Any, options: dict[str, Any]) -> None:
    _assert_batching_exact(server, options)
    with server.client() as c:
        metrics = c.get("/metrics").text
    # Requests really were batched: some decode step ran with more than one request.
    buckets = {
        line.split('le="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("s2s_batch_size_bucket{") and 'model="tiny-marian"' in line
    }
    assert buckets["1.0"] < buckets["+Inf"]


def test_dynamic_batching_is_exact_too(server_factory: Callable[..., Any]) -> None:
    srv = server_factory(
        S2S_MODELS="tiny-marian",
        S2S_BATCH_MODE="dynamic",
        S2S_PRECISION="fp32",
        S2S_MAX_WAIT_MS="20",
    )
    _assert_batching_exact(srv, {"num_beams": 1})
    _assert_batching_exact(srv, {"num_beams": 4})


def test_int8_batching_is_exact_too(server_factory: Callable[..., Any]) -> None:
    # int8 packages are per-row int8: no activation scale shared across rows.
    srv = server_factory(S2S_MODELS="tiny-marian", S2S_PRECISION="int8", S2S_MAX_WAIT_MS="10")
    _assert_batching_exact(srv, {"num_beams": 1})
    _assert_batching_exact(srv, {"num_beams": 4})


def test_summarize_and_chat(server: Any) -> None:
    with server.client() as c:
        s = c.post("/summarize", json={"text": ["A man rides a bike in the park.", "Dogs."]})
        ch = c.post("/chat", json={"messages": [{"role": "user", "content": "Hello there!"}]})
    assert s.status_code == 200 and s.json()["model"] == "tiny-bart"
    assert len(s.json()["summaries"]) == 2 and all(s.json()["summaries"])
    body = ch.json()
    assert ch.status_code == 200 and body["model"] == "tiny-blenderbot"
    assert body["message"]["role"] == "assistant" and body["message"]["content"]
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


@pytest.mark.parametrize(
    ("path", "payload", "key"),
    [
        (
            "/translate",
            {"text": ["A man rides a bike. Two dogs play.", "A woman sings."], **T},
            "translations",
        ),
        ("/summarize", {"text": "A man rides a bike in the park."}, "summaries"),
    ],
)
def test_streaming_adds_up_to_the_plain_answer(
    server: Any, path: str, payload: dict[str, Any], key: str
) -> None:
    with server.client() as c:
        plain = c.post(path, json=payload).json()[key]
        with c.stream("POST", path, json={**payload, "stream": True}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            events = sse_events(r.iter_lines())
    assert events[-1] == "[DONE]" and events[-2][key] == plain
    for i, want in enumerate(plain):
        assert "".join(e["delta"] for e in events[:-2] if e["index"] == i) == want


def test_chat_streaming(server: Any) -> None:
    payload = {"messages": [{"role": "user", "content": "How are you today?"}]}
    with server.client() as c:
        plain = c.post("/chat", json=payload).json()
        with c.stream("POST", "/chat", json={**payload, "stream": True}) as r:
            events = sse_events(r.iter_lines())
    assert events[-1] == "[DONE]"
    assert "".join(e.get("delta", "") for e in events[:-2]) == plain["message"]["content"]
    assert events[-2]["usage"] == plain["usage"]


def test_error_paths(server: Any) -> None:
    with server.client() as c:
        empty = c.post("/translate", json={"text": "", **T})
        pair = c.post("/translate", json={"text": "x", "source_lang": "en", "target_lang": "ja"})
        model = c.post("/summarize", json={"text": "x", "model": "nope"})
        long = c.post("/translate", json={"text": "word " * 1500, **T})  # one sentence
        chunked = c.post("/summarize", json={"text": "word " * 1500})
        cap = c.post("/summarize", json={"text": "x", "options": {"max_new_tokens": 100_000}})
        ctype = c.post("/summarize", content=b"text=x", headers={"content-type": "text/plain"})
        body = c.post("/summarize", json={"text": "x" * 2_000_000})
        route = c.get("/nope")
        timeout = c.post("/summarize", json={"text": "A man.", "options": {"timeout_ms": 1}})
    assert empty.status_code == 422 and _err(empty)["type"] == "validation_error"
    assert pair.status_code == 422 and _err(pair)["type"] == "unsupported_language_pair"
    assert model.status_code == 404 and _err(model)["type"] == "model_not_found"
    assert long.status_code == 413 and "at most" in _err(long)["message"]
    assert _err(long)["limit_tokens"] > 0
    # A text over the summarizer's window is summarized in chunks, not refused.
    assert chunked.status_code == 200 and chunked.json()["summaries"][0], chunked.text
    assert cap.status_code == 413 and ctype.status_code == 415 and body.status_code == 413
    assert route.status_code == 404
    assert timeout.status_code == 504 and _err(timeout)["type"] == "timeout"
    for r in (empty, model, long, timeout):
        assert "Traceback" not in r.text and r.headers["x-request-id"]


def test_metrics_exposition_is_clean(server: Any) -> None:
    with server.client() as c:
        c.post("/summarize", json={"text": "A man."})
        text = c.get("/metrics").text
    for name in (
        "s2s_requests_total",
        "s2s_request_duration_seconds",
        "s2s_queue_wait_seconds",
        "s2s_batch_size",
        "s2s_input_tokens_total",
        "s2s_generated_tokens_total",
        "s2s_in_flight_requests",
        "s2s_queue_depth",
        "s2s_model_info",
        "s2s_decode_step_seconds",
        "s2s_model_ready",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
    assert (
        's2s_model_info{model="tiny-bart",precision="fp32",provider="CPUExecutionProvider"'
        ',task="summarization"} 1.0' in text
    )
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (make system-deps installs it)")
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), (
        check.stdout + check.stderr
    )


def test_request_logs_hold_no_text(server: Any) -> None:
    secret = "Zanzibarian marmalade secrets."
    with server.client() as c:
        c.post("/summarize", json={"text": secret})
    assert secret not in server.log() and "Zanzibarian" not in server.log()
    assert "/summarize" in server.log()


def test_server_process_never_loads_torch(server: Any) -> None:
    with server.client() as c:
        assert c.post("/summarize", json={"text": "A man."}).status_code == 200
    maps = open(f"/proc/{server.process.pid}/maps").read()  # noqa: SIM115
    assert "onnxruntime" in maps
    assert "libtorch" not in maps and "/torch/" not in maps
