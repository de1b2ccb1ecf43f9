"""Stream tickets (issue #33 item 1): minted with an API key or a session, single use, short-lived,
stored hashed, scoped to channels (shared ones too, and a removed member loses them), accepted
by SSE and Socket.IO, and ended with the credential that minted them. Everything goes through the
stack's edge, as a browser's EventSource would."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
import socketio

from sayso_common.clock import utcnow
from sayso_common.credentials import hash_secret
from tests.realtime.clients import Inbox, Received, socket_client, sse_stream
from tests.realtime.test_revocation import CLOSED_WITHIN, open_stream
from tests.support.stack import Owner, RunningStack

TICKETS = "/api/v1/events/tickets"


async def _ticket(client: httpx.AsyncClient, channel_ids: list[str] | None = None) -> str:
    resp = await client.post(TICKETS, json={"channelIds": channel_ids} if channel_ids else None)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert set(body) == {"ticket", "expiresAt"}
    ticket: str = body["ticket"]
    return ticket


def _created(message_id: str) -> Any:
    return lambda item: item.name == "message:created" and item.payload["id"] == message_id


def _texts(inbox: Inbox) -> list[str]:
    return [str(i.payload.get("text")) for i in inbox.items if i.name == "message:created"]


async def _open_status(stack: RunningStack, **params: str) -> httpx.Response:
    """The answer to opening a stream; an opened one is closed at once (its body not read)."""
    async with stack.client() as client, client.stream("GET", "/api/v1/events", params=params) as resp:
        if resp.status_code != 200:
            await resp.aread()
        return resp


async def test_a_ticket_opens_one_stream_once_and_is_stored_hashed(stack: RunningStack, owner: Owner) -> None:
    agent = (await owner.create_agent(name="ticket-once"))["id"]
    ticket = await _ticket(owner.agent)
    async with stack.mongo() as mongo:
        stored = await mongo[stack.mongo_db]["stream_tickets"].find_one({"_id": hash_secret(ticket)})
        assert stored is not None
        assert ticket not in json.dumps(stored, default=str)
        async with sse_stream(stack.url, {}, {"ticket": ticket}) as inbox:
            msg = await owner.post_message(agent, text="through a ticket")
            await inbox.wait_for(_created(msg["id"]), what="the event on a ticket's stream")
            # Used once: gone from storage, and a second open is refused.
            assert (
                await mongo[stack.mongo_db]["stream_tickets"].find_one({"_id": hash_secret(ticket)}) is None
            )
            again = await _open_status(stack, ticket=ticket)
            assert again.status_code == 401
            assert again.json()["error"]["code"] == "unauthorized"


async def test_two_racing_uses_of_one_ticket_open_one_stream(stack: RunningStack, owner: Owner) -> None:
    ticket = await _ticket(owner.human)
    async with stack.client() as a, stack.client() as b:

        async def status(client: httpx.AsyncClient) -> int:
            async with client.stream("GET", "/api/v1/events", params={"ticket": ticket}) as resp:
                return resp.status_code

        codes = sorted(await asyncio.gather(status(a), status(b)))
    assert codes == [200, 401], codes


async def test_an_expired_or_unknown_ticket_opens_nothing(stack: RunningStack, owner: Owner) -> None:
    ticket = await _ticket(owner.agent)
    # Time passing, without waiting for it: the ticket's deadline moved into the past.
    async with stack.mongo() as mongo:
        moved = await mongo[stack.mongo_db]["stream_tickets"].update_one(
            {"_id": hash_secret(ticket)}, {"$set": {"expire_at": utcnow() - timedelta(seconds=1)}}
        )
        assert moved.modified_count == 1
    expired = await _open_status(stack, ticket=ticket)
    assert expired.status_code == 401
    assert (await _open_status(stack, ticket="tk_" + "x" * 43)).status_code == 401
    assert (await _open_status(stack, ticket="not-a-ticket")).status_code == 401


async def test_minting_checks_the_channels_it_names(stack: RunningStack, owner: Owner) -> None:
    mine = (await owner.create_agent(name="ticket-mine"))["id"]
    async with stack.client() as anonymous:
        refused = await anonymous.post(TICKETS, json={})
        assert refused.status_code == 401, refused.text
    other = await stack.new_owner()
    try:
        theirs = (await other.create_agent(name="ticket-theirs"))["id"]
        resp = await owner.agent.post(TICKETS, json={"channelIds": [mine, theirs]})
        assert resp.status_code == 404, resp.text
        assert resp.json()["error"]["field"] == "channelIds[1]"
        assert theirs in resp.json()["error"]["message"]
    finally:
        await other.aclose()
    for body, field in (({"channelIds": []}, "channelIds"), ({"channelIds": "x"}, "channelIds")):
        bad = await owner.agent.post(TICKETS, json=body)
        assert bad.status_code == 422, bad.text
        assert bad.json()["error"]["field"] == field
    bad = await owner.agent.post(TICKETS, json={"channelIds": [mine], "extra": 1})
    assert bad.status_code == 422, bad.text


async def test_a_ticket_for_one_channel_never_sees_another(stack: RunningStack, owner: Owner) -> None:
    a = (await owner.create_agent(name="ticket-a"))["id"]
    b = (await owner.create_agent(name="ticket-b"))["id"]
    ticket = await _ticket(owner.agent, [a])
    async with sse_stream(stack.url, {}, {"ticket": ticket}) as inbox:
        await owner.post_message(b, text="for b")
        last = await owner.post_message(a, text="for a")
        await inbox.wait_for(_created(last["id"]), what="channel A's event")
        assert _texts(inbox) == ["for a"]
        # Narrowing further within the ticket works; leaving it is a 404 (as another's channel).
    narrow = await _ticket(owner.agent, [a])
    outside = await _open_status(stack, ticket=narrow, channel=b)
    assert outside.status_code == 404


async def test_a_shared_channel_ticket_sees_only_it_and_loses_it_with_membership(
    stack: RunningStack, owner: Owner
) -> None:
    member = await stack.new_owner()
    try:
        shared = (await owner.create_agent(name="ticket-shared"))["id"]
        unshared = (await owner.create_agent(name="ticket-not-shared"))["id"]
        own = (await member.create_agent(name="member-own"))["id"]
        # The member's own channel that the ticket does not name.
        left_out = (await member.create_agent(name="member-left-out"))["id"]
        added = await owner.human.post(f"/api/v1/agents/{shared}/members", json={"email": member.email})
        assert added.status_code == 201, added.text
        # Not shared with the member: no ticket names it.
        refused = await member.human.post(TICKETS, json={"channelIds": [shared, unshared]})
        assert refused.status_code == 404, refused.text
        ticket = await _ticket(member.human, [shared, own])
        # The owner's own stream tells when an event of the shared channel has been fanned out:
        # the one realtime process hands each event to every stream's queue in one pass, and a
        # marker posted after that lands behind it in the member's queue. Without it, a marker on
        # another partition can overtake the probe and its absence proves nothing.
        owner_headers = {"x-api-key": owner.api_key}
        async with (
            sse_stream(stack.url, {}, {"ticket": ticket}) as inbox,
            sse_stream(stack.url, owner_headers) as owners,
        ):

            async def fanned_out_then_marked(message_id: str, text: str) -> None:
                await owners.wait_for(_created(message_id), what="the owner's copy of the event")
                marker = await member.post_message(own, text=text)
                await inbox.wait_for(_created(marker["id"]), what="the member's own channel")

            await owner.post_message(unshared, text="owner's other channel")
            await member.post_message(left_out, text="member's channel not in the ticket")
            seen = await owner.post_message(shared, text="shared while a member")
            await inbox.wait_for(_created(seen["id"]), what="the shared channel's event")
            removed = await owner.human.delete(f"/api/v1/agents/{shared}/members/{member.user_id}")
            assert removed.status_code == 200, removed.text
            # Posted until one is left out: membership is re-read every revalidation period.
            for attempt in range(200):
                probe = await owner.post_message(shared, text=f"after removal {attempt}")
                await fanned_out_then_marked(probe["id"], f"marker {attempt}")
                if not any(i.payload.get("id") == probe["id"] for i in inbox.items):
                    break
            else:
                raise AssertionError("the removed member's ticket stream kept the shared channel")
            late = await owner.post_message(shared, text="long after removal")
            await fanned_out_then_marked(late["id"], "last marker")
            assert not any(i.payload.get("id") == late["id"] for i in inbox.items)
            assert "owner's other channel" not in _texts(inbox)
            assert "member's channel not in the ticket" not in _texts(inbox)
    finally:
        await member.aclose()


async def test_resume_works_with_a_fresh_ticket(stack: RunningStack, owner: Owner) -> None:
    agent = (await owner.create_agent(name="ticket-resume"))["id"]
    async with sse_stream(stack.url, {}, {"ticket": await _ticket(owner.agent)}) as inbox:
        first = await owner.post_message(agent, text="seen")
        got = await inbox.wait_for(_created(first["id"]))
    missed = [await owner.post_message(agent, text=f"missed {i}") for i in range(3)]
    cursor = str(got.payload["eventId"])
    # The header (a non-browser client) and the query parameter (a new EventSource).
    for how in ("header", "query"):
        params = {"ticket": await _ticket(owner.agent)}
        headers: dict[str, str] = {}
        if how == "header":
            headers["Last-Event-ID"] = cursor
        else:
            params["lastEventId"] = cursor
        async with sse_stream(stack.url, headers, params) as replay:
            for m in missed:
                await replay.wait_for(_created(m["id"]), what=f"replay by {how}")
            assert [i.payload["id"] for i in replay.items] == [m["id"] for m in missed]


async def test_deleting_the_minting_key_ends_its_ticket_streams(stack: RunningStack, owner: Owner) -> None:
    created = await owner.human.post("/api/v1/api-keys", json={"label": "mints tickets"})
    assert created.status_code == 201, created.text
    key_id, key = created.json()["id"], created.json()["key"]
    async with stack.client(**{"x-api-key": key}) as agent:
        opened = await _ticket(agent)
        unused = await _ticket(agent)
    async with open_stream(stack.url, {}, {"ticket": opened}) as stream:
        revoked = await owner.human.delete(f"/api/v1/api-keys/{key_id}")
        assert revoked.status_code == 204
        got = await stream.inbox.wait_for(
            lambda i: i.name == "error" and i.payload.get("code") == "credentials_revoked",
            CLOSED_WITHIN,
            "the revoked frame",
        )
        assert got.payload["message"] == "the API key was revoked"
        await asyncio.wait_for(stream.ended.wait(), CLOSED_WITHIN)
    # A ticket it minted before the revocation opens nothing afterwards.
    late = await _open_status(stack, ticket=unused)
    assert late.status_code == 401


async def test_socketio_accepts_a_ticket_in_auth_or_query_once(stack: RunningStack, owner: Owner) -> None:
    a = (await owner.create_agent(name="ticket-socket-a"))["id"]
    b = (await owner.create_agent(name="ticket-socket-b"))["id"]
    in_auth = await _ticket(owner.agent, [a])
    async with socket_client(stack.url, {"ticket": in_auth}) as (_, inbox):
        await owner.post_message(b, text="b, not for this socket")
        msg = await owner.post_message(a, text="a, for this socket")
        await inbox.wait_for(_created(msg["id"]), what="the socket's channel")
        assert [i.payload["text"] for i in inbox.items if i.name == "message:created"] == [msg["text"]]
    with pytest.raises(socketio.exceptions.ConnectionError):
        async with socket_client(stack.url, {"ticket": in_auth}):
            pass
    in_query = await _ticket(owner.human, [a])
    async with socket_client(f"{stack.url}?ticket={in_query}", None) as (_, inbox):
        msg = await owner.post_message(a, text="by query")
        got: Received = await inbox.wait_for(_created(msg["id"]), what="the query ticket's socket")
        assert got.payload["channelId"] == a
