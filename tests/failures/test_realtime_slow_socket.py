"""Fault: a Socket.IO client falls behind. The gateway must not queue events for it without
bound: once ``SAYSO_SOCKET_QUEUE_SIZE`` packets wait for it, it is cut off, and the stock
python-socketio client then reconnects *by itself* (a server-side disconnect would have been final
for it) and, resuming from the last event it got, receives everything it had not read. The same
holds for a client that missed more than one resume sends (``SAYSO_RESUME_LIMIT``), and for an
SSE stream, which ends after a cut replay (the SDK reconnects and reads on).

The stopped client runs in a process of its own, stopped with SIGSTOP, on the long-polling
transport: a polling client that stops asks for nothing more, so its queue on the server grows at
once (a WebSocket's would first fill the kernel's socket buffers)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

import sayso
from sayso_devstack.processes import Proc
from tests.conftest import Infra
from tests.support.private import beside
from tests.support.stack import Owner, RunningStack

pytestmark = pytest.mark.slow

QUEUE = 5
RESUME_LIMIT = 10
MESSAGES = 30

CLIENT = textwrap.dedent(
    """
    import asyncio, sys
    import socketio

    url, key, channel = sys.argv[1:4]
    last = {}

    def auth():
        # Called on every (re)connect: resume from the last event handled.
        data = {"apiKey": key, "channels": [channel]}
        if last:
            data["lastEventId"] = last["id"]
        return data

    async def main():
        client = socketio.AsyncClient(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1)

        @client.on("connect", namespace="/ws")
        async def connected():
            print("connected", flush=True)

        @client.on("message:created", namespace="/ws")
        async def created(message):
            last["id"] = message["eventId"]
            print("event", message["text"], flush=True)

        await client.connect(url, namespaces=["/ws"], transports=["polling"], auth=auth)
        await asyncio.sleep(120)

    asyncio.run(main())
    """
)


@pytest.fixture
def small_queue_realtime(infra: Infra, stack: RunningStack) -> Iterator[Proc]:
    limits = {"SAYSO_SOCKET_QUEUE_SIZE": str(QUEUE), "SAYSO_RESUME_LIMIT": str(RESUME_LIMIT)}
    with beside(stack, infra, "realtime", "realtime-small-queue", **limits) as proc:
        yield proc


async def _until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    for _ in range(int(timeout * 10)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _dropped(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("sayso_realtime_slow_sockets_dropped_total "):
            return float(line.split()[1])
    return 0.0


async def test_a_client_that_stops_reading_is_cut_off_and_catches_up_by_itself(
    tmp_path: Path, owner: Owner, small_queue_realtime: Proc
) -> None:
    agent = await owner.create_agent(name="slow-reader")
    out = tmp_path / "client.out"
    with out.open("w") as sink:
        client = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CLIENT,
            f"http://127.0.0.1:{small_queue_realtime.port}",
            owner.api_key,
            agent["id"],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )

    def lines() -> list[str]:
        return out.read_text().splitlines()

    try:
        await _until(lambda: "connected" in lines(), "the client's first connection")
        await owner.post_message(agent["id"], text="before")
        await _until(lambda: "event before" in lines(), "a first event, read")

        os.kill(client.pid, signal.SIGSTOP)
        for n in range(MESSAGES):
            await owner.post_message(agent["id"], text=f"m{n}")
        await _until(lambda: _dropped(small_queue_realtime.port) >= 1, "the gateway cutting it off")
        os.kill(client.pid, signal.SIGCONT)

        wanted = {f"event m{n}" for n in range(MESSAGES)}
        await _until(lambda: wanted <= set(lines()), "every event, after reconnecting")
        # It got there by reconnecting on its own, not by reading a queue that kept growing.
        assert lines().count("connected") >= 2, lines()
    finally:
        os.kill(client.pid, signal.SIGCONT)
        client.kill()
        await client.wait()


async def test_a_client_that_missed_more_than_one_resume_sends_reads_on_by_itself(
    owner: Owner, small_queue_realtime: Proc
) -> None:
    agent = await owner.create_agent(name="far-behind")
    seen: list[str] = []
    last: dict[str, str] = {}
    connects: list[int] = []

    def auth() -> dict[str, Any]:
        data: dict[str, Any] = {"apiKey": owner.api_key, "channels": [agent["id"]]}
        if last:
            data["lastEventId"] = last["id"]
        return data

    client = socketio.AsyncClient(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1)

    @client.on("connect", namespace="/ws")  # type: ignore[untyped-decorator]
    async def connected() -> None:
        connects.append(1)

    @client.on("message:created", namespace="/ws")  # type: ignore[untyped-decorator]
    async def created(message: dict[str, Any]) -> None:
        seen.append(message["text"])
        last["id"] = message["eventId"]

    url = f"http://127.0.0.1:{small_queue_realtime.port}"
    await client.connect(url, namespaces=["/ws"], transports=["websocket"], auth=auth)
    try:
        await owner.post_message(agent["id"], text="before")
        await _until(lambda: seen == ["before"], "a first event")
        await client.disconnect()
        texts = [f"m{n}" for n in range(int(RESUME_LIMIT * 2.5))]
        for text in texts:
            await owner.post_message(agent["id"], text=text)
        await client.connect(url, namespaces=["/ws"], transports=["websocket"], auth=auth)
        await _until(lambda: set(texts) <= set(seen), "every missed event")
        # In order (the events stored just before a resume's last one come again: clients drop
        # repeats by event id, as docs/how-to/wait-for-answers.md says).
        assert list(dict.fromkeys(seen)) == ["before", *texts]
        assert len(connects) >= 4, connects  # three resumes, the last two after being cut off
    finally:
        await client.disconnect()


async def test_an_sse_client_that_missed_more_than_one_resume_sends_reads_on(
    owner: Owner, small_queue_realtime: Proc
) -> None:
    agent = await owner.create_agent(name="sse-far-behind")
    url = f"http://127.0.0.1:{small_queue_realtime.port}"
    async with sayso.AsyncClient(url, owner.api_key) as client:

        async def first_seen() -> str:
            # The stream connects on the first read: keep posting until one arrives live.
            async def keep_posting() -> None:
                for n in range(100):
                    await owner.post_message(agent["id"], text=f"before {n}")
                    await asyncio.sleep(0.3)

            poster = asyncio.create_task(keep_posting())
            try:
                async with contextlib.aclosing(client.events(agent["id"])) as events:
                    async for event in events:
                        if event.type == "message:created" and event.id is not None:
                            return event.id
            finally:
                poster.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poster
            raise AssertionError("the stream ended")

        last = await asyncio.wait_for(first_seen(), 30)
        texts = [f"s{n}" for n in range(int(RESUME_LIMIT * 2.5))]
        for text in texts:
            await owner.post_message(agent["id"], text=text)

        async def read_on() -> list[str]:
            got: list[str] = []
            async with contextlib.aclosing(client.events(agent["id"], last_event_id=last)) as events:
                async for event in events:
                    if event.type == "message:created":
                        got.append(event.data["text"])
                    if set(texts) <= set(got):
                        return got
            raise AssertionError("the stream ended")

        got = await asyncio.wait_for(read_on(), 60)
    # In order and once each: the SDK dropped what the resumes sent again.
    assert [t for t in got if not t.startswith("before")] == texts
