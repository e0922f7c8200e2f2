"""One rule per question across routes (issue 39, finding 7): texts with nothing to
translate under source "auto" come back unchanged (URLs, addresses, numbers), language
codes are case-insensitive on our route as on DeepL's, and blank text is refused on
every route in its own format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from api_helpers import client_for

from tests.support.fake_runtime import FakeRuntime

NO_PROSE = [
    "https://example.com/a/b?c=d&e=f",
    "www.example.org/path",
    "user.name@example.org",
    "12:30, +49 30 1234567",
]


def _runtimes() -> dict[str, Any]:
    """en+fr -> de, so the detector chooses among three languages."""
    return {
        "mt-to-de": FakeRuntime("mt-to-de", "translation", languages=(("en", "fr"), ("de",))),
        "mt-to-en": FakeRuntime("mt-to-en", "translation", languages=(("de",), ("en",))),
        "fake-sum": FakeRuntime("fake-sum", "summarization"),
        "fake-chat": FakeRuntime("fake-chat", "chat"),
    }


async def test_text_without_prose_comes_back_unchanged_under_auto(tmp_path: Path) -> None:
    async with client_for(tmp_path, _runtimes()) as client:
        native = await client.post("/translate", json={"text": NO_PROSE, "target_lang": "de"})
        libre = await client.post(
            "/libretranslate/translate", json={"q": NO_PROSE, "source": "auto", "target": "de"}
        )
        deepl = await client.post("/v2/translate", json={"text": NO_PROSE, "target_lang": "DE"})
    assert native.status_code == 200, native.text
    assert native.json()["translations"] == NO_PROSE
    assert {d["language"] for d in native.json()["detected_languages"]} == {"und"}
    assert libre.status_code == 200 and libre.json()["translatedText"] == NO_PROSE, libre.text
    assert deepl.status_code == 200, deepl.text
    assert [t["text"] for t in deepl.json()["translations"]] == NO_PROSE


@pytest.mark.parametrize(("source", "target"), [("EN", "DE"), ("En", "de"), ("en", "DE")])
async def test_language_codes_are_case_insensitive(
    tmp_path: Path, source: str, target: str
) -> None:
    async with client_for(tmp_path, _runtimes()) as client:
        upper = await client.post(
            "/translate",
            json={"text": "Good morning.", "source_lang": source, "target_lang": target},
        )
        lower = await client.post(
            "/translate", json={"text": "Good morning.", "source_lang": "en", "target_lang": "de"}
        )
    assert upper.status_code == 200, upper.text
    assert upper.json() == lower.json()


BLANK = ["", "   ", " \n\t "]


@pytest.mark.parametrize("blank", BLANK)
@pytest.mark.parametrize(
    ("path", "payload", "status", "key"),
    [
        ("/translate", lambda b: {"text": ["Hi.", b], "target_lang": "de"}, 422, "error"),
        ("/summarize", lambda b: {"text": b}, 422, "error"),
        ("/chat", lambda b: {"messages": [{"role": "user", "content": b}]}, 422, "error"),
        (
            "/chat",
            lambda b: {
                "messages": [
                    {"role": "user", "content": "Hi."},
                    {"role": "assistant", "content": b},
                    {"role": "user", "content": "Well?"},
                ]
            },
            422,
            "error",
        ),
        (
            "/v1/chat/completions",
            lambda b: {"model": "fake-chat", "messages": [{"role": "user", "content": b}]},
            422,
            "error",
        ),
        (
            "/libretranslate/translate",
            lambda b: {"q": ["Hi.", b], "source": "en", "target": "de"},
            400,
            "error",
        ),
        (
            "/v2/translate",
            lambda b: {"text": ["Hi.", b], "target_lang": "DE", "source_lang": "EN"},
            400,
            "message",
        ),
    ],
)
async def test_blank_text_is_refused_on_every_route(
    tmp_path: Path, path: str, payload: Any, status: int, key: str, blank: str
) -> None:
    async with client_for(tmp_path, _runtimes()) as client:
        r = await client.post(path, json=payload(blank))
    assert r.status_code == status, r.text
    body = r.json()
    if key == "error" and status == 422:
        assert body["error"]["type"] == "validation_error", body
        assert "blank" in body["error"]["message"] or "empty" in body["error"]["message"]
    else:
        assert set(body) == {key} and "empty" in body[key], body
