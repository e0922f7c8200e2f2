"""The HTTP API against fake runtimes: happy paths, layout, streaming, options."""

from __future__ import annotations

import re
from pathlib import Path

from api_helpers import client_for, sse_events

from service.text import sentences
from tests.support.fake_runtime import FakeOptions, FakeRuntime, expected


def _fake_translate(rt: FakeRuntime, sentence: str, **opts: int) -> str:
    ids = rt.encode_texts([sentence])[0]
    return rt.decode(expected(ids, FakeOptions(**opts))[0])


async def test_translate_keeps_order_and_layout(tmp_path: Path) -> None:
    text = "Hello there.  How are you?\n\nA new paragraph.\n"
    async with client_for(tmp_path) as client:
        r = await client.post(
            "/translate",
            json={"text": [text, "Short one"], "source_lang": "en", "target_lang": "de"},
        )
        rt = client.app.state.registry.entries["fake-mt"].service.runtime  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "fake-mt"
    seg = sentences.split(text)
    want = sentences.join(seg, [_fake_translate(rt, s) for s in seg.sentences])
    assert body["translations"] == [want, _fake_translate(rt, "Short one")]
    assert "\n\n" in body["translations"][0] and body["translations"][0].endswith("\n")


async def test_translate_stream_adds_up_to_the_answer(tmp_path: Path) -> None:
    payload = {"text": ["One. Two.\nThree.", "Four"], "source_lang": "en", "target_lang": "de"}
    async with client_for(tmp_path) as client:
        plain = (await client.post("/translate", json=payload)).json()
        r = await client.post("/translate", json={**payload, "stream": True})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    done = events[-2]
    assert done["done"] is True and done["translations"] == plain["translations"]
    for i, want in enumerate(plain["translations"]):
        assert "".join(e["delta"] for e in events[:-2] if e["index"] == i) == want


async def test_summarize_and_stream(tmp_path: Path) -> None:
    async with client_for(tmp_path) as client:
        r = await client.post("/summarize", json={"text": "Some long text to summarize."})
        s = await client.post(
            "/summarize", json={"text": "Some long text to summarize.", "stream": True}
        )
        rt = client.app.state.registry.entries["fake-sum"].service.runtime  # type: ignore[attr-defined]
    assert r.status_code == 200
    ids = rt.encode_texts(["Some long text to summarize."])[0]
    assert r.json() == {
        "model": "fake-sum",
        "summaries": [rt.decode(expected(ids, FakeOptions())[0])],
    }
    events = sse_events(s.text)
    assert events[-2]["summaries"] == r.json()["summaries"]


async def test_options_reach_the_runtime(tmp_path: Path) -> None:
    async with client_for(tmp_path) as client:
        a = await client.post("/summarize", json={"text": "OOOO", "options": {"max_new_tokens": 3}})
        b = await client.post("/summarize", json={"text": "OOOO", "options": {"max_new_tokens": 5}})
    assert len(a.json()["summaries"][0]) == 3
    assert len(b.json()["summaries"][0]) == 5


async def test_chat_renders_history_and_reports_usage(tmp_path: Path) -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "How are you?"},
    ]
    async with client_for(tmp_path) as client:
        r = await client.post("/chat", json={"messages": messages})
        s = await client.post("/chat", json={"messages": messages, "stream": True})
        rt = client.app.state.registry.entries["fake-chat"].service.runtime  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text
    body = r.json()
    ids = rt.encode_texts(["Hi\nHello\nHow are you?"])[0]
    out = expected(ids, FakeOptions())[0]
    assert body["message"] == {"role": "assistant", "content": rt.decode(out)}
    assert body["usage"] == {
        "prompt_tokens": len(ids),
        "completion_tokens": len(out),
        "total_tokens": len(ids) + len(out),
    }
    events = sse_events(s.text)
    assert "".join(e.get("delta", "") for e in events[:-2]) == body["message"]["content"]
    assert events[-2]["usage"] == body["usage"]


async def test_openai_chat_completion_and_stream(tmp_path: Path) -> None:
    req = {
        "model": "fake-chat",
        "messages": [{"role": "user", "content": "Hi there"}],
        "max_tokens": 4,
    }
    async with client_for(tmp_path) as client:
        r = await client.post("/v1/chat/completions", json=req)
        s = await client.post(
            "/v1/chat/completions",
            json={**req, "stream": True, "stream_options": {"include_usage": True}},
        )
        models = await client.get("/v1/models")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    content = body["choices"][0]["message"]["content"]
    assert content and body["usage"]["completion_tokens"] == len(content)
    events = sse_events(s.text)
    assert events[-1] == "[DONE]"
    chunks = [e for e in events[:-1] if e["choices"]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == content
    assert chunks[-1]["choices"][0]["finish_reason"] == body["choices"][0]["finish_reason"]
    assert events[-2]["usage"] == body["usage"]
    assert [m["id"] for m in models.json()["data"]] == ["fake-chat"]


async def test_openai_stop_strings_cut_the_text(tmp_path: Path) -> None:
    req = {"model": "fake-chat", "messages": [{"role": "user", "content": "Hi there"}]}
    async with client_for(tmp_path) as client:
        full = (await client.post("/v1/chat/completions", json=req)).json()
        text = full["choices"][0]["message"]["content"]
        stop = text[2:4]
        r = await client.post("/v1/chat/completions", json={**req, "stop": [stop]})
        s = await client.post("/v1/chat/completions", json={**req, "stop": stop, "stream": True})
    assert r.json()["choices"][0]["message"]["content"] == text[: text.find(stop)]
    assert r.json()["choices"][0]["finish_reason"] == "stop"
    deltas = [e["choices"][0]["delta"].get("content", "") for e in sse_events(s.text)[:-1]]
    assert "".join(deltas) == text[: text.find(stop)]


async def test_ops_endpoints(tmp_path: Path) -> None:
    async with client_for(tmp_path) as client:
        health = await client.get("/health")
        ready = await client.get("/ready")
        models = await client.get("/models")
        await client.post("/summarize", json={"text": "x"})
        metrics = await client.get("/metrics")
    assert health.status_code == 200
    assert ready.status_code == 200 and ready.json()["ready"] is True
    listed = {m["name"]: m for m in models.json()["models"]}
    assert listed["fake-mt"]["task"] == "translation"
    assert listed["fake-mt"]["languages"] == {
        "source": ["en"],
        "target": ["de"],
        "pairs": ["en->de"],
    }
    assert listed["fake-mt"]["precision"] == "fp32" and listed["fake-mt"]["state"] == "ready"
    text = metrics.text
    assert 's2s_requests_total{model="fake-sum",route="/summarize",status="200"} 1.0' in text
    assert 's2s_model_ready{model="fake-chat"} 1.0' in text
    assert "s2s_generated_tokens_total" in text and "s2s_decode_step_seconds_bucket" in text


async def test_request_id_is_echoed_or_generated(tmp_path: Path) -> None:
    async with client_for(tmp_path) as client:
        mine = await client.get("/health", headers={"X-Request-ID": "abc-123"})
        generated = await client.get("/health")
        bad = await client.get("/health", headers={"X-Request-ID": "no spaces allowed"})
    assert mine.headers["x-request-id"] == "abc-123"
    assert len(generated.headers["x-request-id"]) == 32
    assert bad.headers["x-request-id"] != "no spaces allowed"


async def test_openapi_docs_are_served(tmp_path: Path) -> None:
    async with client_for(tmp_path) as client:
        r = await client.get("/openapi.json")
    assert {"/translate", "/summarize", "/chat", "/v1/chat/completions"} <= set(r.json()["paths"])


def documented_error_statuses() -> set[int]:
    """The statuses of docs/api.md's error table that reach a client (499 is logged only)."""
    doc = (Path(__file__).resolve().parents[3] / "docs" / "api.md").read_text()
    table = doc.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    return {int(m) for m in re.findall(r"^\| (\d{3}) \|", table, re.M)} - {499}


async def test_openapi_lists_the_documented_statuses_with_the_error_body(tmp_path: Path) -> None:
    async with client_for(tmp_path) as client:
        doc = (await client.get("/openapi.json")).json()
    want = {"200"} | {str(s) for s in documented_error_statuses()}
    for path in ("/translate", "/summarize", "/chat", "/v1/chat/completions"):
        responses = doc["paths"][path]["post"]["responses"]
        assert set(responses) == want, path
        assert "text/event-stream" in responses["200"]["content"]
        for status in want - {"200"}:
            ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/ErrorResponse"), (path, status)
        assert "Retry-After" in responses["429"]["headers"]
