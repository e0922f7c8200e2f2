"""A full queue refuses a request before its text work (issue 39, finding 7): 429s took
3.3 s at the median under overload because requests that found room at the first check
all split and tokenized, and only then found the queue full. A request now holds its
place (and a lower bound of its cost) while its text work runs, so the refused ones never
tokenize."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import pytest
from api_helpers import client_for, wait_until

from service.text.language import Detection, LanguageDetector
from tests.support.fake_runtime import FakeRuntime


class SlowTokenizer(FakeRuntime):
    """Tokenizing takes 50 ms per call (a busy worker pool); calls are counted."""

    def __init__(self, name: str, task: str) -> None:
        super().__init__(name, task, step_delay_s=0.02)
        self.encode_calls = 0
        self._count = threading.Lock()

    def encode_texts(
        self,
        texts: Sequence[str],
        source_lang: str | None = None,
        target_lang: str | None = None,
    ) -> list[list[int]]:
        with self._count:
            self.encode_calls += 1
        time.sleep(0.05)
        return super().encode_texts(texts, source_lang, target_lang)


PAYLOADS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "/translate": (
        "fake-mt",
        "translation",
        {"text": "Ab. Cd.", "source_lang": "en", "target_lang": "de"},
    ),
    "/summarize": ("fake-sum", "summarization", {"text": "Abcd"}),
    "/chat": ("fake-chat", "chat", {"messages": [{"role": "user", "content": "Abcd"}]}),
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("path", list(PAYLOADS))
async def test_refused_requests_never_tokenize(tmp_path: Path, path: str, stream: bool) -> None:
    name, task, payload = PAYLOADS[path]
    runtime = SlowTokenizer(name, task)
    async with client_for(tmp_path, {name: runtime}, max_queue=2, warmup=False) as client:
        results = await asyncio.gather(
            *(client.post(path, json={**payload, "stream": stream}) for _ in range(12))
        )
    codes = [r.status_code for r in results]
    assert codes.count(429) >= 10 - 2 and set(codes) == {200, 429}, codes
    assert runtime.encode_calls <= codes.count(200), (runtime.encode_calls, codes)


async def test_the_cost_bound_refuses_before_tokenizing(tmp_path: Path) -> None:
    # Each request costs at least max_new_tokens 64 (one row) per text: a queue of 100
    # work units holds one at a time.
    runtime = SlowTokenizer("fake-sum", "summarization")
    payload = {"text": "Abcd", "options": {"max_new_tokens": 64}}
    async with client_for(
        tmp_path,
        {"fake-sum": runtime},
        max_queue_cost=100,
        max_request_cost=100,
        warmup=False,
    ) as client:
        results = await asyncio.gather(*(client.post("/summarize", json=payload) for _ in range(8)))
    codes = [r.status_code for r in results]
    assert 200 in codes and 429 in codes, codes
    assert runtime.encode_calls <= codes.count(200), (runtime.encode_calls, codes)


class CountingDetector:
    """The real detector, counting its calls."""

    def __init__(self, inner: LanguageDetector) -> None:
        self.inner = inner
        self.calls = 0

    def detect(self, texts: Sequence[str], candidates: Collection[str]) -> list[Detection]:
        self.calls += 1
        return self.inner.detect(texts, candidates)

    def knows(self, language: str) -> bool:
        return self.inner.knows(language)


async def test_source_auto_is_refused_before_detection(tmp_path: Path) -> None:
    runtime = FakeRuntime("fake-mt", "translation", step_delay_s=0.05)
    async with client_for(tmp_path, {"fake-mt": runtime}, max_queue=1, warmup=False) as client:
        app = client.app  # type: ignore[attr-defined]
        detector = CountingDetector(app.state.translator.detector)
        app.state.translator.detector = detector
        busy = asyncio.ensure_future(
            client.post(
                "/translate",
                json={"text": "Abc.", "source_lang": "en", "target_lang": "de"},
            )
        )
        engine = app.state.registry.get("fake-mt").engine
        assert await wait_until(lambda: not engine.has_room())
        refused = await client.post(
            "/translate", json={"text": "Good morning.", "target_lang": "de"}
        )
        assert (await busy).status_code == 200
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "queue_full"
    assert detector.calls == 0
