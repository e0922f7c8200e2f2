"""The web page's routes: served open, self-contained, small, off with S2S_UI=false
(the page itself is driven in Chromium by tests/e2e/test_e2e_webui.py)."""

from __future__ import annotations

import re
from pathlib import Path

from service.api.routes.ui import FILES, load_files
from tests.unit.api.api_helpers import client_for

KEY = "a-secret-key-1"


async def test_page_and_files_are_served_with_a_strict_policy(tmp_path: Path) -> None:
    async with client_for(tmp_path) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "connect-src 'self'" in policy and "default-src 'none'" in policy
        for name, media_type in FILES.items():
            asset = await client.get(f"/ui/{name}")
            assert asset.status_code == 200
            assert asset.headers["content-type"] == media_type
        missing = await client.get("/ui/secrets.txt")
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"
        traversal = await client.get("/ui/..%2Fapp.py")
        assert traversal.status_code == 404
        schema = (await client.get("/openapi.json")).json()
        assert "/" not in schema["paths"] and "/ui/{name}" not in schema["paths"]


async def test_page_is_open_with_keys_and_the_api_is_not(tmp_path: Path) -> None:
    async with client_for(tmp_path, api_keys=[KEY]) as client:
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/ui/app.js")).status_code == 200
        # What the page reads before it has a key: whether one is needed, and the limits.
        settings = (await client.get("/libretranslate/frontend/settings")).json()
        assert settings["keyRequired"] is True and settings["charLimit"] > 0
        assert (await client.get("/models")).status_code == 401
        headers = {"Authorization": f"Bearer {KEY}"}
        assert (await client.get("/models", headers=headers)).status_code == 200


async def test_ui_off_leaves_a_json_404(tmp_path: Path) -> None:
    async with client_for(tmp_path, ui=False) as client:
        for path in ("/", "/ui/app.js"):
            response = await client.get(path)
            assert response.status_code == 404
            assert response.json()["error"]["type"] == "not_found"


def test_page_is_small_and_self_contained() -> None:
    files = load_files()
    assert sum(len(b) for b in files.values()) < 100_000
    text = b"".join(files.values()).decode()
    # No other host: no absolute URLs to load from, no server paths, no keys.
    assert not re.search(r"(src|href)=\"(https?:)?//", text)
    assert not re.search(r"fetch\(\s*[\"'`]https?:", text)
    assert "/work/" not in text and "models_dir" not in text
