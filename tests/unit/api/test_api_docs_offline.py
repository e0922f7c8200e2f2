"""No page of the service loads code from a CDN (issue 39, finding 7): FastAPI's /docs and
/redoc pull Swagger UI and ReDoc from jsdelivr, blank on an offline network and
third-party script on the API's origin, so they are off; the schema stays at
/openapi.json for any local viewer."""

from __future__ import annotations

from pathlib import Path

from api_helpers import client_for


async def test_docs_pages_are_off_and_the_schema_is_served(tmp_path: Path) -> None:
    async with client_for(tmp_path) as client:
        docs = await client.get("/docs")
        redoc = await client.get("/redoc")
        oauth = await client.get("/docs/oauth2-redirect")
        schema = await client.get("/openapi.json")
    for page in (docs, redoc, oauth):
        assert page.status_code == 404, page.text
        assert "cdn" not in page.text.lower()
    assert schema.status_code == 200 and "/translate" in schema.json()["paths"]
