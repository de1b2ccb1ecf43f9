"""SSE ``GET /api/v1/events``: the owner's events with ``id:`` lines, ``Last-Event-ID`` resume,
channel filter, heartbeats."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from sayso_devstack.processes import Proc
from tests.realtime.clients import Received, sse_stream
from tests.support.stack import Owner, RunningStack

APPROVE = {"selectedOption": "approve"}


def _created(message_id: str) -> Callable[[Received], bool]:
    return lambda item: item.name == "message:created" and item.payload["id"] == message_id


async def test_sse_streams_events_and_resumes_from_last_event_id(stack: RunningStack, owner: Owner) -> None:
    agent = await owner.create_agent(name="sse")
    channel = agent["id"]
    headers = {"x-api-key": owner.api_key}
    async with sse_stream(stack.url, headers) as first:
        msg = await owner.post_message(channel, text="watch me", review={"type": "approval", "payload": {}})
        got = await first.wait_for(_created(msg["id"]))
        assert {k: v for k, v in got.payload.items() if k != "eventId"} == msg
        assert (await owner.respond(msg["id"], APPROVE)).status_code == 200
        responded = await first.wait_for(
            lambda i: i.name == "review:responded" and i.payload["id"] == msg["id"]
        )
        assert responded.payload["review"]["response"] == APPROVE
    last = responded.payload["eventId"]
    missed = [await owner.post_message(channel, text=f"while away {i}") for i in range(3)]
    async with sse_stream(stack.url, {**headers, "Last-Event-ID": last}) as resumed:
        for m in missed:
            await resumed.wait_for(_created(m["id"]), what=m["text"])
        live = await owner.post_message(channel, text="back live")
        await resumed.wait_for(_created(live["id"]))
    # Besides what it missed, a resume repeats the events stored just before the cursor (see
    # history.py); never one after it twice, nor anything else.
    after = [i for i in resumed.items if i.payload["eventId"] > last]
    assert sorted(i.payload["id"] for i in after) == sorted([m["id"] for m in missed] + [live["id"]])
    assert len({i.payload["eventId"] for i in after}) == len(after)
    repeats = [i for i in resumed.items if i.payload["eventId"] <= last]
    assert {i.payload["id"] for i in repeats} <= {msg["id"]}, repeats


async def test_sse_channel_filter_and_tenant_isolation(stack: RunningStack, owner: Owner) -> None:
    first = await owner.create_agent(name="one")
    second = await owner.create_agent(name="two")
    other = await stack.new_owner()
    try:
        theirs = await other.create_agent(name="theirs")
        async with (
            sse_stream(
                stack.url, {"Authorization": f"Bearer {owner.token}"}, {"channel": first["id"]}
            ) as narrow,
            sse_stream(stack.url, {"x-api-key": other.api_key}) as foreign,
        ):
            await owner.post_message(second["id"], text="not for the narrow stream")
            mine = await owner.post_message(first["id"], text="for it")
            await narrow.wait_for(_created(mine["id"]))
            own = await other.post_message(theirs["id"], text="theirs")
            await foreign.wait_for(_created(own["id"]))
        assert {i.payload["channelId"] for i in narrow.items} == {first["id"]}
        assert {i.payload["channelId"] for i in foreign.items} == {theirs["id"]}
        denied = await other.agent.get("/api/v1/events", params={"channel": first["id"]})
        assert denied.status_code == 404
        assert denied.json()["error"]["code"] == "not_found"
    finally:
        await other.aclose()
    async with stack.client() as anonymous:
        refused = await anonymous.get("/api/v1/events")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"


async def test_sse_sends_heartbeats_and_events_from_any_replica(
    stack: RunningStack, owner: Owner, second_realtime: Proc
) -> None:
    agent = await owner.create_agent(name="heartbeat")
    base = f"http://127.0.0.1:{second_realtime.port}"
    lines: list[str] = []
    async with (
        httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(10, read=30)) as client,
        client.stream("GET", "/api/v1/events", headers={"x-api-key": owner.api_key}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-cache"
        posted = False
        started = time.monotonic()
        async with asyncio.timeout(30):
            async for line in response.aiter_lines():
                lines.append(line)
                if line == ": heartbeat" and not posted:
                    await owner.post_message(agent["id"], text="after a heartbeat")
                    posted = True
                if line.startswith("event: message:created"):
                    break
    assert lines[0].startswith("retry: ")
    assert ": heartbeat" in lines
    assert any(line.startswith("id: evt_") for line in lines)
    print(f"\nSSE heartbeat then event on the second replica after {time.monotonic() - started:.2f} s")
