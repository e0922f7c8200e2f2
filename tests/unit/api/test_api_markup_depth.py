"""Deeply nested markup is a clear 4xx in every dialect, never a RecursionError's 500
with its traceback logged (issue 39, finding 3)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from api_helpers import client_for

from service.text.markup import MAX_INLINE_DEPTH

DEEP = "<p>" + "<b>" * 400 + "A man." + "</b>" * 400 + "</p>"
XML_DEEP = "<doc>" + "<x>" * 400 + "A man." + "</x>" * 400 + "</doc>"
NATIVE = {"text": DEEP, "target_lang": "de", "format": "html"}


@pytest.mark.parametrize(
    ("path", "payload", "status", "key"),
    [
        ("/translate", {**NATIVE, "source_lang": "en"}, 422, "error"),
        ("/translate", {**NATIVE, "source_lang": "auto"}, 422, "error"),
        (
            "/libretranslate/translate",
            {"q": DEEP, "source": "en", "target": "de", "format": "html"},
            400,
            "error",
        ),
        (
            "/libretranslate/translate",
            {"q": DEEP, "source": "auto", "target": "de", "format": "html"},
            400,
            "error",
        ),
        (
            "/v2/translate",
            {"text": [DEEP], "target_lang": "DE", "tag_handling": "html"},
            400,
            "message",
        ),
        (
            "/v2/translate",
            {
                "text": [XML_DEEP],
                "source_lang": "EN",
                "target_lang": "DE",
                "tag_handling": "xml",
                "non_splitting_tags": ["x"],
            },
            400,
            "message",
        ),
    ],
)
async def test_deep_nesting_is_a_4xx_in_the_routes_dialect(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    path: str,
    payload: dict[str, Any],
    status: int,
    key: str,
) -> None:
    with caplog.at_level(logging.INFO):
        async with client_for(tmp_path) as client:
            r = await client.post(path, json=payload)
    assert r.status_code == status, r.text
    body = r.json()
    message = body[key]["message"] if path == "/translate" else body[key]
    assert str(MAX_INLINE_DEPTH) in message, body
    if path == "/translate":
        assert body["error"]["type"] == "markup_too_deep"
        assert body["error"]["limit"] == MAX_INLINE_DEPTH
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text
