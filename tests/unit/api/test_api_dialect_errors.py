"""Each compatible API answers every failure in its own format (issue 39, finding 4):
bodies the middleware refuses (invalid UTF-8, lone surrogates, JSON nested too deep, too
large), its 503/429s, unknown paths and deadline expiries. LibreTranslate:
``{"error": "..."}`` with 400 for client errors; DeepL: ``{"message": "..."}`` with 400
(413, 429, 456 and 5xx kept). Never the native ``{"error": {"type": ...}}`` object."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from api_helpers import client_for

from tests.support.fake_runtime import FakeRuntime

JSON = {"Content-Type": "application/json"}
BODIES = {
    "invalid-utf8": b'{"q": "\xff\xfe A man.", "text": ["\xff"], "target": "de"}',
    "surrogate": b'{"q": "\\ud800 A man.", "text": ["\\ud800"], "source": "en", "target": "de",'
    b' "target_lang": "DE"}',
    "depth": b'{"q": ' + b"[" * 40 + b'"x"' + b"]" * 40 + b', "target": "de"}',
    "recursion": b'{"q": ' + b"[" * 5000 + b"]" * 5000 + b"}",
}
ROUTES = {
    "/libretranslate/translate": ("error", 400),
    "/libretranslate/detect": ("error", 400),
    "/v2/translate": ("message", 400),
}


def _dialect(response: Any, key: str, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {key}, body
    assert isinstance(body[key], str) and body[key], body
    return str(body[key])


@pytest.mark.parametrize("path", list(ROUTES))
@pytest.mark.parametrize("kind", list(BODIES))
@pytest.mark.parametrize("content_type", ["application/json", "application/vnd.api+json"])
async def test_unparseable_bodies_answer_in_the_dialect(
    tmp_path: Path, path: str, kind: str, content_type: str
) -> None:
    key, status = ROUTES[path]
    async with client_for(tmp_path) as client:
        r = await client.post(path, content=BODIES[kind], headers={"Content-Type": content_type})
    message = _dialect(r, key, status)
    assert "Traceback" not in message


@pytest.mark.parametrize(
    ("path", "key", "status"),
    [
        ("/libretranslate/translate", "error", 400),
        ("/v2/translate", "message", 413),
    ],
)
async def test_a_body_over_the_limit_answers_in_the_dialect(
    tmp_path: Path, path: str, key: str, status: int
) -> None:
    async with client_for(tmp_path, max_body_bytes=2048) as client:
        declared = await client.post(path, json={"q": "a" * 3000, "text": ["a"]})
    _dialect(declared, key, status)


@pytest.mark.parametrize(
    ("path", "key"), [("/libretranslate/nowhere", "error"), ("/v2/nowhere", "message")]
)
async def test_unknown_paths_answer_in_the_dialect(tmp_path: Path, path: str, key: str) -> None:
    async with client_for(tmp_path) as client:
        r = await client.post(path, json={})
    _dialect(r, key, 404)


@pytest.mark.parametrize(
    ("path", "payload", "key"),
    [
        ("/libretranslate/translate", {"q": "ABC.", "source": "en", "target": "de"}, "error"),
        ("/v2/translate", {"text": ["ABC."], "source_lang": "EN", "target_lang": "DE"}, "message"),
    ],
)
async def test_a_deadline_expiry_is_a_504_not_a_500(
    tmp_path: Path, path: str, payload: dict[str, Any], key: str
) -> None:
    slow = {"fake-mt": FakeRuntime("fake-mt", "translation", step_delay_s=0.2)}
    async with client_for(tmp_path, slow, default_timeout_ms=50) as client:
        r = await client.post(path, json=payload)
    assert "deadline" in _dialect(r, key, 504)
