"""Idle keep-alive connections outlive the proxies' (SAYSO_HTTP_KEEPALIVE_SECONDS, 75 s by
default): uvicorn's own 5 s made a client or proxy that reuses a connection after 5-15 s idle
race the server's close and get a connection reset (seen in the loaded benchmark)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from tests.support.stack import RunningStack

IDLE_SECONDS = 6  # past uvicorn's default of 5 s


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> bytes:
    writer.write(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await asyncio.wait_for(reader.readexactly(length), 10)
    return head.split(b"\r\n", 1)[0]


async def test_an_idle_connection_is_still_open_after_uvicorns_default(stack: RunningStack) -> None:
    url = urlsplit(stack.api_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        assert await _get(reader, writer, url.netloc) == b"HTTP/1.1 200 OK"
        await asyncio.sleep(IDLE_SECONDS)
        # The same connection: with a 5 s keep-alive the server has closed it by now.
        assert await _get(reader, writer, url.netloc) == b"HTTP/1.1 200 OK"
    finally:
        writer.close()
