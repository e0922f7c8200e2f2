"""The web page: ``GET /`` and its static files under ``/ui/`` (``S2S_UI``, default on).

The page is plain HTML, CSS and JavaScript from ``service/api/ui/`` (no build step, no
third-party code): it talks to this server's own routes only (``/translate``,
``/summarize``, ``/v1/chat/completions`` streamed, ``/models``, ``/ready``, and
``/libretranslate/languages`` and ``/libretranslate/frontend/settings`` for the language
pairs, the character limit and whether a key is needed). The files are read once, when
the router is built, and are open to everyone (service/api/auth.py): they hold no data,
no server paths and no keys. The Content-Security-Policy lets the page load and fetch
from its own origin only.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from service.api.errors import ApiError

#: The page's files and their media types: nothing else under /ui/ is served.
FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The files change with the package: revalidate rather than serve a stale page.
    "Cache-Control": "no-cache",
}


def load_files() -> dict[str, bytes]:
    """The page's files from the package, by name."""
    folder = resources.files("service.api") / "ui"
    return {name: (folder / name).read_bytes() for name in FILES}


def router() -> APIRouter:
    """The page's routes (left out of the OpenAPI document: they are no API)."""
    files = load_files()
    ui = APIRouter(include_in_schema=False)

    def _file(name: str) -> Response:
        return Response(files[name], media_type=FILES[name], headers=HEADERS)

    @ui.get("/")
    async def page() -> Response:
        """The page."""
        return _file("index.html")

    @ui.get("/ui/{name}")
    async def asset(name: str) -> Response:
        """One of the page's files (404 for any other name)."""
        if name not in files:
            raise ApiError(404, "not_found", f"no file {name!r}")
        return _file(name)

    return ui
