"""A request with both Content-Length and Transfer-Encoding is refused with 400 and its
connection closed (issue 39, finding 7; RFC 9112 6.3 allows it, and it closes request
smuggling behind a proxy that reads the other header). Real uvicorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from api_helpers import serving

BODY = b'{"text": "Hi.", "source_lang": "en", "target_lang": "de"}'
CHUNKED = b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)


async def _exchange(host: str, port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(request)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 10)  # until the server closes
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("path", "key"),
    [("/translate", "error"), ("/libretranslate/translate", "error"), ("/v2/usage", "message")],
)
async def test_content_length_with_transfer_encoding_is_a_400(
    tmp_path: Path, path: str, key: str
) -> None:
    smuggle = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode() + CHUNKED
    async with serving(tmp_path) as (host, port):
        answer = await _exchange(host, port, smuggle)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer
    assert b"connection: close" in head.lower()
    assert set(json.loads(body)) == {key}
    assert answer.count(b"HTTP/1.1") == 1  # nothing else was read as a request


async def test_either_header_alone_is_served(tmp_path: Path) -> None:
    head = "POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    async with serving(tmp_path) as (host, port):
        chunked = await _exchange(
            host,
            port,
            (head + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode() + CHUNKED,
        )
        plain = await _exchange(
            host,
            port,
            (head + f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n").encode() + BODY,
        )
    assert chunked.startswith(b"HTTP/1.1 200 ") and plain.startswith(b"HTTP/1.1 200 ")
