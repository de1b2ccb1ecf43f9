"""Receivers that misbehave below HTTP: reset the connection, answer with garbage, or send a
huge body. A raw asyncio server plays them, so nothing smooths the bytes over. Each case is
recorded as a failed attempt with a reason and retried (or, for a huge 2xx, delivered with
only the first kilobyte kept)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sayso_devstack.processes import free_port
from tests.dispatcher.flows import answered, settled
from tests.support.stack import Owner, eventually

pytestmark = pytest.mark.slow

HUGE = 5 * 1024 * 1024


class RawReceiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.hits: dict[str, int] = {}
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> RawReceiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mode}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            mode = head.split(b" ")[1].decode().strip("/")
            self.hits[mode] = self.hits.get(mode, 0) + 1
            if mode == "reset":
                writer.transport.abort()  # RST, no answer at all
                return
            if mode == "garbage":
                writer.write(b"\x00\xffTHIS IS NOT HTTP\r\n\r\n")
            elif mode in ("huge-ok", "huge-error"):
                status = b"200 OK" if mode == "huge-ok" else b"500 Internal Server Error"
                writer.write(
                    b"HTTP/1.1 " + status + b"\r\ncontent-length: " + str(HUGE).encode() + b"\r\n\r\n"
                )
                writer.write(b"x" * HUGE)
            await writer.drain()
            writer.close()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass


@pytest.fixture
async def raw() -> AsyncIterator[RawReceiver]:
    async with RawReceiver() as server:
        yield server


@pytest.mark.parametrize("mode", ["reset", "garbage", "huge-error"])
async def test_broken_answers_fail_with_a_reason_and_are_retried(
    owner: Owner, raw: RawReceiver, mode: str
) -> None:
    agent = await owner.create_agent(webhookUrl=raw.url(mode), webhookRetrySchedule=[1])
    msg = await answered(owner, agent["id"])
    failed = await settled(owner, msg["id"], "failed", timeout=40)
    assert failed["attemptCount"] == 2  # the first attempt and the one retry of the schedule
    assert raw.hits[mode] == 2
    for attempt in failed["attempts"]:
        assert attempt["errorKind"] is not None or attempt["statusCode"] == 500
        if attempt["body"] is not None:
            assert len(attempt["body"]) <= 1024

    # The message's copy of the delivery state is written a moment after the delivery's own.
    async def marked_failed() -> bool:
        message = (await owner.agent.get(f"/api/v1/messages/{msg['id']}")).json()
        return bool(message["deliveryStatus"] == "webhook_failed")

    await eventually(marked_failed, 10, "the message marked webhook_failed")


async def test_huge_success_body_is_delivered_and_trimmed(owner: Owner, raw: RawReceiver) -> None:
    agent = await owner.create_agent(webhookUrl=raw.url("huge-ok"))
    msg = await answered(owner, agent["id"])
    done = await settled(owner, msg["id"], "delivered", timeout=40)
    assert done["attemptCount"] == 1
    assert done["attempts"][0]["statusCode"] == 200
    assert len(done["attempts"][0]["body"]) <= 1024
