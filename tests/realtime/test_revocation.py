"""Open sockets and SSE streams are closed, on every realtime replica, once their credential no
longer holds: a revoked API key, an expired user token, a user who no longer exists. Connections
with a valid credential are left alone. The test stack re-checks every second
(``SAYSO_REALTIME_REVALIDATE_SECONDS``); the bounds below are generous."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import engineio
import httpx
import pytest
import socketio
from httpx_sse import aconnect_sse
from pymongo import AsyncMongoClient

from sayso_common.credentials import ApiKeyResolver, issue_user_token
from sayso_common.jwt_keys import JwtKeys, derived_jwt_key
from sayso_common.principals import Principal
from sayso_devstack.processes import Proc
from sayso_realtime.revocation import CredentialWatch
from tests.realtime.clients import Inbox, Received, socket_client
from tests.support.stack import Owner, RunningStack, eventually

CLOSED_WITHIN = 20.0


@dataclass
class Stream:
    """An SSE stream read in the background: every frame with data (events and the final
    ``error``) goes to ``inbox``; ``ended`` is set when the server ends the stream."""

    inbox: Inbox = field(default_factory=Inbox)
    ended: asyncio.Event = field(default_factory=asyncio.Event)


@contextlib.asynccontextmanager
async def open_stream(
    base_url: str, headers: dict[str, str], params: dict[str, str] | None = None
) -> AsyncIterator[Stream]:
    stream = Stream()
    opened: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def read() -> None:
        try:
            async with (
                httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30, read=120)) as client,
                aconnect_sse(client, "GET", "/api/v1/events", headers=headers, params=params) as source,
            ):
                opened.set_result(source.response.status_code)
                async for sse in source.aiter_sse():
                    if sse.data:
                        await stream.inbox.add(Received(sse.event, json.loads(sse.data)))
        finally:
            stream.ended.set()
            if not opened.done():
                opened.set_exception(EOFError("stream ended before it opened"))

    task = asyncio.create_task(read())
    try:
        assert await asyncio.wait_for(opened, 15) == 200
        yield stream
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _created(message_id: str) -> Callable[[Received], bool]:
    return lambda item: item.name == "message:created" and item.payload["id"] == message_id


def _revoked(name: str) -> Callable[[Received], bool]:
    return lambda item: item.name == name and item.payload.get("code") == "credentials_revoked"


async def _closed_socket(client: socketio.AsyncClient, inbox: Inbox, message: str) -> None:
    got = await inbox.wait_for(_revoked("auth:revoked"), CLOSED_WITHIN, "auth:revoked")
    assert got.payload["message"] == message

    async def gone() -> bool:
        return not client.connected

    await eventually(gone, CLOSED_WITHIN, "socket disconnected by the server")


async def _closed_stream(stream: Stream, message: str) -> None:
    got = await stream.inbox.wait_for(_revoked("error"), CLOSED_WITHIN, "event: error")
    assert got.payload["message"] == message
    await asyncio.wait_for(stream.ended.wait(), CLOSED_WITHIN)
    assert stream.inbox.items[-1] is got  # the last frame


async def _new_key(owner: Owner) -> tuple[str, str]:
    created = await owner.human.post("/api/v1/api-keys", json={"label": "revoke me"})
    assert created.status_code == 201, created.text
    return created.json()["id"], created.json()["key"]


async def _revalidation_rounds(client: httpx.AsyncClient, base_url: str) -> float:
    text = (await client.get(f"{base_url}/metrics")).text
    for line in text.splitlines():
        if line.startswith('sayso_realtime_credential_revalidations_total{outcome="ok"}'):
            return float(line.split(" ")[1])
    return 0.0


async def test_a_revoked_api_key_loses_its_sockets_and_streams_on_every_replica(
    stack: RunningStack, owner: Owner, second_realtime: Proc
) -> None:
    agent = await owner.create_agent(name="revocation")
    key_id, key = await _new_key(owner)
    second = f"http://127.0.0.1:{second_realtime.port}"
    async with (
        socket_client(stack.url, {"apiKey": key}) as (edge_socket, edge_inbox),
        socket_client(second, {"apiKey": key}) as (second_socket, second_inbox),
        open_stream(stack.url, {"x-api-key": key}) as edge_stream,
        open_stream(second, {"x-api-key": key}) as second_stream,
        # Same owner, other credentials: untouched by the revocation.
        socket_client(stack.url, {"apiKey": owner.api_key}) as (control_socket, control_inbox),
        open_stream(second, {"Authorization": f"Bearer {owner.token}"}) as control_stream,
    ):
        revoked_inboxes = [edge_inbox, second_inbox, edge_stream.inbox, second_stream.inbox]
        before = await owner.post_message(agent["id"], text="before the revocation")
        for inbox in [*revoked_inboxes, control_inbox, control_stream.inbox]:
            await inbox.wait_for(_created(before["id"]), what="event before the revocation")

        assert (await owner.human.delete(f"/api/v1/api-keys/{key_id}")).status_code == 204
        await asyncio.gather(
            _closed_socket(edge_socket, edge_inbox, "the API key was revoked"),
            _closed_socket(second_socket, second_inbox, "the API key was revoked"),
            _closed_stream(edge_stream, "the API key was revoked"),
            _closed_stream(second_stream, "the API key was revoked"),
        )

        after = await owner.post_message(agent["id"], text="after the revocation")
        # Both replicas fanned it out (the controls got it); the closed connections did not.
        await control_inbox.wait_for(_created(after["id"]), what="control socket, edge")
        await control_stream.inbox.wait_for(_created(after["id"]), what="control stream, second replica")
        for inbox in revoked_inboxes:
            assert not any(_created(after["id"])(item) for item in inbox.items)
        assert control_socket.connected
        assert not control_stream.ended.is_set()
        assert not any(
            i.name in ("auth:revoked", "error") for i in control_inbox.items + control_stream.inbox.items
        )

    # And the key is refused at once when the clients try to come back, on both replicas.
    for base in (stack.url, second):
        with pytest.raises(socketio.exceptions.ConnectionError, match="unauthorized"):
            async with socket_client(base, {"apiKey": key}):
                pass
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            refused = await client.get("/api/v1/events", headers={"x-api-key": key})
        assert refused.status_code == 401


async def test_a_client_that_ignores_the_disconnect_is_cut_off(stack: RunningStack, owner: Owner) -> None:
    """A bare Engine.IO client speaking just enough Socket.IO to join ``/ws`` (packets ``0``
    connect, ``1`` disconnect, ``2`` event): it ignores the namespace disconnect, so the server
    closes its transport itself."""
    key_id, key = await _new_key(owner)
    client = engineio.AsyncClient()
    packets: list[str] = []
    hung_up = asyncio.Event()

    async def on_message(data: Any) -> None:
        packets.append(str(data))

    async def on_disconnect(*_: Any) -> None:
        hung_up.set()

    client.on("message", on_message)
    client.on("disconnect", on_disconnect)
    await client.connect(stack.url, transports=["websocket"], engineio_path="socket.io")
    try:
        await client.send("0/ws," + json.dumps({"apiKey": key}))

        async def joined() -> bool:
            return any(p.startswith("0/ws,") for p in packets)

        await eventually(joined, 15, "namespace /ws joined")
        assert (await owner.human.delete(f"/api/v1/api-keys/{key_id}")).status_code == 204

        async def told() -> bool:
            return any(p.startswith('2/ws,["auth:revoked"') for p in packets) and "1/ws," in packets

        await eventually(told, CLOSED_WITHIN, "auth:revoked, then the namespace disconnect")
        await asyncio.wait_for(hung_up.wait(), CLOSED_WITHIN)
    finally:
        await client.disconnect()


async def test_a_user_token_that_expires_loses_its_connections(
    stack: RunningStack, owner: Owner, second_realtime: Proc
) -> None:
    agent = await owner.create_agent(name="short session")
    keys = JwtKeys([derived_jwt_key(stack.env["SAYSO_SECRET_KEY"])])
    ttl = 6
    token = issue_user_token(owner.user_id, keys, ttl_seconds=ttl)
    expires = time.time() + ttl
    second = f"http://127.0.0.1:{second_realtime.port}"
    async with (
        socket_client(second, {"token": token}) as (socket, inbox),
        open_stream(stack.url, {"Authorization": f"Bearer {token}"}) as stream,
        socket_client(stack.url, {"token": owner.token}) as (control_socket, control_inbox),
    ):
        before = await owner.post_message(agent["id"], text="while the token holds")
        await inbox.wait_for(_created(before["id"]), what="socket, before expiry")
        await stream.inbox.wait_for(_created(before["id"]), what="stream, before expiry")

        await asyncio.gather(
            _closed_socket(socket, inbox, "the token expired"),
            _closed_stream(stream, "the token expired"),
        )
        assert time.time() >= expires - 2  # closed for expiring, not before (exp is whole seconds)

        after = await owner.post_message(agent["id"], text="after expiry")
        await control_inbox.wait_for(_created(after["id"]), what="control socket")
        assert not any(_created(after["id"])(item) for item in inbox.items + stream.inbox.items)
        assert control_socket.connected


async def test_a_removed_user_loses_the_connections_of_its_keys_and_tokens(
    stack: RunningStack, second_realtime: Proc
) -> None:
    gone = await stack.new_owner()
    second = f"http://127.0.0.1:{second_realtime.port}"
    try:
        agent = await gone.create_agent(name="soon orphaned")
        async with (
            socket_client(stack.url, {"token": gone.token}) as (socket, inbox),
            open_stream(second, {"x-api-key": gone.api_key}) as stream,
        ):
            before = await gone.post_message(agent["id"], text="still here")
            await inbox.wait_for(_created(before["id"]), what="socket")
            await stream.inbox.wait_for(_created(before["id"]), what="stream")
            # There is no "remove user" endpoint; the user document going away is what counts.
            client: AsyncMongoClient[dict[str, Any]] = stack.mongo()
            try:
                deleted = await client.sayso.users.delete_one({"_id": gone.user_id})
            finally:
                await client.close()
            assert deleted.deleted_count == 1
            await asyncio.gather(
                _closed_socket(socket, inbox, "the user no longer exists"),
                _closed_stream(stream, "the user no longer exists"),
            )
    finally:
        await gone.aclose()


async def test_valid_credentials_keep_their_connections_across_revalidation_rounds(
    stack: RunningStack, owner: Owner, second_realtime: Proc
) -> None:
    agent = await owner.create_agent(name="steady")
    first = f"http://127.0.0.1:{stack.procs['realtime'].port}"
    second = f"http://127.0.0.1:{second_realtime.port}"
    async with (
        httpx.AsyncClient(timeout=10) as metrics,
        socket_client(stack.url, {"apiKey": owner.api_key}) as (key_socket, key_inbox),
        socket_client(second, {"token": owner.token}) as (token_socket, token_inbox),
        open_stream(second, {"x-api-key": owner.api_key}) as key_stream,
        open_stream(stack.url, {"Authorization": f"Bearer {owner.token}"}) as token_stream,
    ):
        inboxes = [key_inbox, token_inbox, key_stream.inbox, token_stream.inbox]
        start = {base: await _revalidation_rounds(metrics, base) for base in (first, second)}

        async def three_more_rounds() -> bool:
            counts = [await _revalidation_rounds(metrics, base) - start[base] for base in start]
            return all(n >= 3 for n in counts)

        # These connections' credentials were re-checked (with MongoDB) at least three times on
        # both replicas.
        await eventually(three_more_rounds, 30, "three revalidation rounds on each replica")
        message = await owner.post_message(agent["id"], text="still listening")
        for inbox in inboxes:
            await inbox.wait_for(_created(message["id"]), what="event after several rounds")
        assert key_socket.connected
        assert token_socket.connected
        assert not key_stream.ended.is_set()
        assert not token_stream.ended.is_set()
        assert not any(i.name in ("auth:revoked", "error") for inbox in inboxes for i in inbox.items)


async def test_a_round_that_cannot_read_mongodb_keeps_connections_but_still_ends_expired_tokens() -> None:
    unreachable: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        "mongodb://127.0.0.1:9/?directConnection=true", serverSelectionTimeoutMS=200
    )
    try:
        db = unreachable.sayso
        watch = CredentialWatch(db, ApiKeyResolver(db), period=1.0)
        told: dict[str, list[str]] = {"key": [], "expired": [], "fresh": []}
        now = time.time()
        watch.watch(Principal("usr_1", "api_key", "a" * 64, "key_1"), told["key"].append)
        watch.watch(Principal("usr_1", "user", "b" * 64, None, now - 1), told["expired"].append)
        fresh = watch.watch(Principal("usr_1", "user", "c" * 64, None, now + 3600), told["fresh"].append)
        watch.watch(Principal("usr_1", "user", "c" * 64, None, now + 3600), told["fresh"].append)
        assert len(watch) == 3  # distinct credentials, not connections
        assert await watch.check() == 1
        assert told == {"key": [], "expired": ["the token expired"], "fresh": []}
        assert len(watch) == 2
        fresh.release()
        assert len(watch) == 2  # the other connection with that token is still open
    finally:
        await unreachable.close()
