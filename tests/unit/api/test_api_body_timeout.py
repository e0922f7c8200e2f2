"""A request body that stalls or trickles is answered 408 and its connection closed
(issue 39, finding 6): real uvicorn on 127.0.0.1 with the server's own protocol class,
fake runtimes. ``S2S_BODY_TIMEOUT_S`` from the headers, plus one second per
``S2S_BODY_MIN_RATE`` bytes received."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import time
from pathlib import Path

import pytest
from api_helpers import serving


async def _answer(reader: asyncio.StreamReader, within_s: float) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), within_s)


def _head(path: str, length: int, content_type: str = "application/json") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("path", "content_type", "key"),
    [
        ("/translate", "application/json", "error"),
        ("/libretranslate/translate", "application/json", "error"),
        ("/v2/translate", "application/x-www-form-urlencoded", "message"),
        ("/v2/languages", "application/x-www-form-urlencoded", "message"),
    ],
)
async def test_a_stalled_body_is_a_408_and_the_connection_closes(
    tmp_path: Path, path: str, content_type: str, key: str
) -> None:
    async with serving(tmp_path, body_timeout_s=0.5) as (host, port):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(_head(path, 100, content_type) + b"{")  # 1 of 100 bytes, then nothing
        await writer.drain()
        started = time.monotonic()
        answer = await _answer(reader, 10)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower(), answer
    assert set(json.loads(body)) == {key}, answer
    assert time.monotonic() - started < 5


async def test_trickling_bodies_are_closed_and_a_steady_one_is_served(tmp_path: Path) -> None:
    payload = b'{"text": "' + b"Ab. " * 100 + b'", "source_lang": "en", "target_lang": "de"}'
    async with serving(tmp_path, body_timeout_s=0.5, body_min_rate=200) as (host, port):

        def trickle() -> bytes:
            """What the server answered before it closed the connection (b"reset" if the
            close crossed one of our bytes and the kernel dropped the answer). A blocking
            socket in a thread, so its bytes are not timed by the server's event loop."""
            with socket.create_connection((host, port), timeout=10) as sock:
                sock.sendall(_head("/translate", len(payload)))
                answer = b""
                try:
                    for i in range(len(payload)):  # 10 bytes/s, far under 200 bytes/s
                        readable, _, _ = select.select([sock], [], [], 0.1)
                        if readable:
                            break
                        sock.sendall(payload[i : i + 1])
                    while chunk := sock.recv(65536):
                        answer += chunk
                except ConnectionError:
                    return answer or b"reset"
                return answer

        async def steady() -> bytes:
            # 400 bytes/s: longer than the timeout alone allows, fast enough for the rate.
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(_head("/translate", len(payload)))
            for i in range(0, len(payload), 40):
                writer.write(payload[i : i + 40])
                await writer.drain()
                await asyncio.sleep(0.1)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            writer.close()
            return head

        started = time.monotonic()
        answers = await asyncio.gather(*(asyncio.to_thread(trickle) for _ in range(5)), steady())
    assert all(a.startswith(b"HTTP/1.1 408 ") or a == b"reset" for a in answers[:-1]), answers
    assert any(a.startswith(b"HTTP/1.1 408 ") for a in answers[:-1]), answers
    assert answers[-1].startswith(b"HTTP/1.1 200 "), answers[-1]
    assert time.monotonic() - started < 8
