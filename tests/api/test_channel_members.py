"""Shared channels on the real stack: an owner adds reviewers by e-mail; members read the channel
and answer its reviews (REST, inbox, SSE, long-poll, files) but manage nothing; everyone else,
and every API key but the owner's, gets 404."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import socketio

from tests.realtime.clients import Inbox, socket_client, sse_stream
from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack

APPROVE = {"selectedOption": "approve"}


@pytest.fixture(scope="module")
async def people(stack: RunningStack) -> AsyncIterator[tuple[Owner, Owner, Owner]]:
    """(owner, member, outsider), for the module (creating a user is slow: Argon2)."""
    made = [await stack.new_owner() for _ in range(3)]
    try:
        yield made[0], made[1], made[2]
    finally:
        for person in made:
            await person.aclose()


async def add(owner: Owner, agent_id: str, email: str) -> httpx.Response:
    return await owner.human.post(f"/api/v1/agents/{agent_id}/members", json={"email": email})


async def test_owner_manages_members_by_email(people: tuple[Owner, Owner, Owner]) -> None:
    owner, member, outsider = people
    agent = await owner.create_agent(name="shared-manage")
    base = f"/api/v1/agents/{agent['id']}/members"
    added = await add(owner, agent["id"], member.email.upper())  # e-mails are matched case-blind
    assert added.status_code == 201, added.text
    assert (added.json()["userId"], added.json()["email"]) == (member.user_id, member.email)
    cases: list[tuple[httpx.AsyncClient, dict[str, Any], int, str | None]] = [
        (owner.human, {"email": member.email}, 409, "already_member"),
        (owner.human, {"email": owner.email}, 422, "validation_error"),
        (owner.human, {"email": "nobody@example.test"}, 404, "not_found"),
        (owner.human, {"mail": member.email}, 422, "validation_error"),
        (owner.agent, {"email": outsider.email}, 403, "user_required"),  # an agent cannot share
        (member.human, {"email": outsider.email}, 404, "not_found"),  # a member manages nothing
        (outsider.human, {"email": outsider.email}, 404, "not_found"),
    ]
    for client, body, status, code in cases:
        resp = await client.post(base, json=body)
        assert (resp.status_code, resp.json()["error"]["code"]) == (status, code), (body, resp.text)
    listed = await owner.human.get(base)
    assert [m["email"] for m in listed.json()["data"]] == [member.email]
    for client in (member.human, outsider.human):
        assert (await client.get(base)).status_code == 404
        assert (await client.delete(f"{base}/{member.user_id}")).status_code == 404
    assert (await owner.human.delete(f"{base}/{member.user_id}")).json() == {"deleted": True}
    assert (await owner.human.delete(f"{base}/{member.user_id}")).status_code == 404
    assert (await owner.human.get(base)).json()["data"] == []


async def test_members_read_and_answer_but_manage_nothing(
    stack: RunningStack, people: tuple[Owner, Owner, Owner], receiver: Receiver
) -> None:
    owner, member, outsider = people
    agent = await owner.create_agent(name="shared-read", webhookUrl=receiver.url("/shared"))
    assert (await add(owner, agent["id"], member.email)).status_code == 201
    text = await owner.agent.post(
        "/api/v1/files/store-text",
        json={"channelId": agent["id"], "content": "# plan", "filename": "plan.md"},
    )
    assert text.status_code == 201, text.text
    msg = await owner.post_message(
        agent["id"], text="Ship?", review={"type": "approval"}, attachmentIds=[text.json()["id"]]
    )
    ch, mid, fid = agent["id"], msg["id"], text.json()["id"]

    mine = await member.human.get("/api/v1/agents")
    shared = next(a for a in mine.json() if a["id"] == ch)
    # The member sees the channel, not its webhook settings.
    assert (shared["role"], shared["webhookUrl"], shared["name"]) == ("member", None, "shared-read")
    assert (await owner.human.get(f"/api/v1/agents/{ch}")).json()["role"] == "owner"
    reads = [
        f"/api/v1/agents/{ch}",
        f"/api/v1/messages?channel={ch}",
        f"/api/v1/messages/{mid}",
        f"/api/v1/reviews/{mid}?channel={ch}",
        f"/api/v1/reviews/pending?channel={ch}",
        f"/api/v1/files/{fid}",
        f"/api/v1/files/{fid}/download",
    ]
    for path in reads:
        assert (await member.human.get(path)).status_code == 200, path
        assert (await outsider.human.get(path)).status_code == 404, path
        # A member's own API key acts for the member's own channels only.
        assert (await member.agent.get(path)).status_code == 404, path
    inbox = (await member.human.get("/api/v1/reviews/inbox")).json()["data"]
    assert mid in [m["id"] for m in inbox]
    assert (await member.human.get("/api/v1/stats/pending")).json()["byChannel"][ch] == 1
    assert mid not in [m["id"] for m in (await outsider.human.get("/api/v1/reviews/inbox")).json()["data"]]

    manage: list[tuple[str, str, dict[str, Any] | None]] = [
        ("PATCH", f"/api/v1/agents/{ch}", {"name": "taken"}),
        ("DELETE", f"/api/v1/agents/{ch}", None),
        ("PUT", f"/api/v1/agents/{ch}/commands", {"commands": []}),
        ("POST", "/api/v1/agents/setWebhook", {"channelId": ch, "url": "https://evil.example/hook"}),
        ("POST", "/api/v1/agents/deleteWebhook", {"channelId": ch}),
        ("POST", f"/api/v1/agents/{ch}/webhook/test", None),
        ("POST", f"/api/v1/agents/{ch}/webhook/recover", None),
        ("POST", f"/api/v1/agents/{ch}/webhook/secret/rotate", None),
        ("GET", f"/api/v1/agents/{ch}/inbound-webhooks", None),
        ("POST", f"/api/v1/agents/{ch}/inbound-webhooks", {"name": "x"}),
        ("GET", f"/api/v1/agents/{ch}/triggers", None),
        ("GET", f"/api/v1/agents/{ch}/members", None),
        ("GET", f"/api/v1/messages/{mid}/deliveries?channel={ch}", None),
        ("POST", f"/api/v1/messages/{mid}/webhook/retry?channel={ch}", None),
        ("DELETE", f"/api/v1/messages/{mid}", None),
        ("POST", "/api/v1/messages/user", {"channelId": ch, "text": "hello"}),
        ("POST", "/api/v1/status/ping", {"agentId": ch, "status": "busy"}),
    ]
    for method, path, body in manage:
        for person in (member, outsider):
            resp = await person.human.request(method, path, json=body)
            assert resp.status_code == 404, (person is member, method, path, resp.text)
    posted = await member.agent.post("/api/v1/messages", json={"channelId": ch, "text": "spoofed"})
    assert posted.status_code == 404
    assert (await outsider.respond(mid, APPROVE)).status_code == 404
    assert (await owner.human.get(f"/api/v1/agents/{ch}")).json()["name"] == "shared-read"

    answered = await member.respond(mid, APPROVE)
    assert answered.status_code == 200, answered.text
    assert answered.json()["review"]["respondedBy"] == member.user_id
    [hook] = await receiver.wait_for("/shared")
    assert hook.json()["response"] == APPROVE
    waited = await member.human.get(f"/api/v1/reviews/{mid}/wait", params={"channel": ch})
    assert (waited.status_code, waited.json()["status"]) == (200, "completed")
    assert (
        await outsider.human.get(f"/api/v1/reviews/{mid}/wait", params={"channel": ch})
    ).status_code == 404

    removed = await owner.human.delete(f"/api/v1/agents/{ch}/members/{member.user_id}")
    assert removed.status_code == 200
    # Requests see the removal at once.
    for path in reads:
        assert (await member.human.get(path)).status_code == 404, path
    assert ch not in [a["id"] for a in (await member.human.get("/api/v1/agents")).json()]


async def _seen(inbox: Inbox, message_id: str, timeout: float) -> bool:
    try:
        await inbox.wait_for(lambda i: i.payload.get("id") == message_id, timeout=timeout)
    except AssertionError:
        return False
    return True


async def test_live_streams_follow_membership(
    stack: RunningStack, people: tuple[Owner, Owner, Owner]
) -> None:
    """A member's open SSE stream starts receiving a channel shared with them, and stops once
    removed, without reconnecting (the gateway re-reads memberships every revalidation period:
    1 s in the tests)."""
    owner, member, outsider = people
    agent = await owner.create_agent(name="shared-live")
    own = await member.create_agent(name="member-own")
    headers = {"Authorization": f"Bearer {member.token}"}
    async with (
        sse_stream(stack.url, headers) as live,
        sse_stream(stack.url, {"x-api-key": member.api_key}) as key,
    ):
        before = await owner.post_message(agent["id"], text="before")
        assert (await add(owner, agent["id"], member.email)).status_code == 201
        # Within a few periods the stream joins the channel; until then messages pass it by.
        for attempt in range(20):
            probe = await owner.post_message(agent["id"], text=f"probe {attempt}")
            if await _seen(live, probe["id"], 1.0):
                break
        else:
            raise AssertionError("the member's stream never joined the shared channel")
        assert not any(i.payload.get("id") == before["id"] for i in live.items)
        removal = await owner.human.delete(f"/api/v1/agents/{agent['id']}/members/{member.user_id}")
        assert removal.status_code == 200
        await asyncio.sleep(3)  # three revalidation periods
        after = await owner.post_message(agent["id"], text="after removal")
        marker = await member.post_message(own["id"], text="own channel")
        assert await _seen(live, marker["id"], 10.0)
        assert not await _seen(live, after["id"], 1.0)
        # The member's API key never reached the shared channel.
        assert await _seen(key, marker["id"], 10.0)
        assert not any(i.payload.get("channelId") == agent["id"] for i in key.items)
    refused = await member.human.get("/api/v1/events", params={"channel": agent["id"]})
    assert refused.status_code == 404
    assert outsider.user_id != member.user_id


async def test_sockets_follow_membership(stack: RunningStack, people: tuple[Owner, Owner, Owner]) -> None:
    """A member's socket joins the shared channel's room (also when narrowed to it), leaves it when
    removed and joins it again when added back, all without reconnecting."""
    owner, member, outsider = people
    agent = await owner.create_agent(name="shared-sockets")
    assert (await add(owner, agent["id"], member.email)).status_code == 201
    with pytest.raises(socketio.exceptions.ConnectionError, match="not_found"):
        async with socket_client(stack.url, {"token": outsider.token, "channels": [agent["id"]]}):
            pass
    async with (
        socket_client(stack.url, {"token": member.token}) as (_, everything),
        socket_client(stack.url, {"token": member.token, "channels": [agent["id"]]}) as (_, narrowed),
    ):
        shared = await owner.post_message(agent["id"], text="to the team", review={"type": "approval"})
        for inbox in (everything, narrowed):
            assert await _seen(inbox, shared["id"], 10.0)
        assert (await member.respond(shared["id"], APPROVE)).status_code == 200
        answered = await everything.wait_for(
            lambda i: i.name == "review:responded" and i.payload["id"] == shared["id"]
        )
        assert answered.payload["review"]["respondedBy"] == member.user_id
        removal = await owner.human.delete(f"/api/v1/agents/{agent['id']}/members/{member.user_id}")
        assert removal.status_code == 200
        await asyncio.sleep(3)  # three revalidation periods
        gone = await owner.post_message(agent["id"], text="after removal")
        assert not await _seen(everything, gone["id"], 2.0)
        assert not await _seen(narrowed, gone["id"], 0.1)
        assert (await add(owner, agent["id"], member.email)).status_code == 201
        for attempt in range(20):
            probe = await owner.post_message(agent["id"], text=f"back {attempt}")
            if await _seen(everything, probe["id"], 1.0):
                break
        else:
            raise AssertionError("the member's socket never joined the channel again")
        # A socket narrowed to channels keeps what it lost lost: it never widens by itself.
        assert not await _seen(narrowed, probe["id"], 0.5)


async def test_members_never_see_the_owners_webhook_settings(
    stack: RunningStack, people: tuple[Owner, Owner, Owner], receiver: Receiver
) -> None:
    """A message's webhookUrl (whose query may carry a token) and its review's callback are the
    owner's webhook settings: the owner and the agent's key read them; a member reads neither,
    in no REST answer, long-poll, SSE or socket event (the agent view hides them already)."""
    owner, member, _ = people
    agent = await owner.create_agent(name="shared-hooks")
    assert (await add(owner, agent["id"], member.email)).status_code == 201
    token = f"tok-{secrets.token_hex(8)}"
    hook, callback = receiver.url(f"/msg?token={token}"), receiver.url(f"/cb?token={token}")
    async with (
        sse_stream(stack.url, {"Authorization": f"Bearer {member.token}"}) as live,
        socket_client(stack.url, {"token": member.token}) as (_, sock),
        sse_stream(stack.url, {"Authorization": f"Bearer {owner.token}"}) as owners,
    ):
        msg = await owner.post_message(
            agent["id"],
            text="Deploy?",
            webhookUrl=hook,
            review={"type": "approval", "callback": {"url": callback}},
        )
        ch, mid = agent["id"], msg["id"]
        for client in (owner.agent, owner.human):
            full = (await client.get(f"/api/v1/messages/{mid}")).json()
            assert (full["webhookUrl"], full["review"]["callback"]["url"]) == (hook, callback)
        reads = [
            f"/api/v1/messages/{mid}",
            f"/api/v1/messages?channel={ch}",
            f"/api/v1/reviews/{mid}?channel={ch}",
            f"/api/v1/reviews/pending?channel={ch}",
            "/api/v1/reviews/inbox",
        ]
        seen = []
        for path in reads:
            resp = await member.human.get(path)
            assert resp.status_code == 200, (path, resp.text)
            seen.append(resp.text)
        one = (await member.human.get(f"/api/v1/messages/{mid}")).json()
        assert (one["webhookUrl"], one["review"]["callback"], one["text"]) == (None, None, "Deploy?")
        answered = await member.respond(mid, APPROVE)
        assert answered.status_code == 200, answered.text
        seen.append(answered.text)
        waited = await member.human.get(f"/api/v1/reviews/{mid}/wait", params={"channel": ch})
        assert waited.json()["status"] == "completed"
        seen.append(waited.text)
        for inbox in (live, sock):
            await inbox.wait_for(lambda i: i.name == "review:responded" and i.payload.get("id") == mid)
            events = [i.payload for i in inbox.items if i.payload.get("id") == mid]
            assert {e["webhookUrl"] for e in events} == {None}
            seen.extend(json.dumps(e) for e in events)
        # The owner's stream carries them: the payload is made per reader, not per event.
        mine = await owners.wait_for(lambda i: i.name == "review:responded" and i.payload.get("id") == mid)
        assert (mine.payload["webhookUrl"], mine.payload["review"]["callback"]["url"]) == (hook, callback)
    assert len(seen) >= 11
    for text in seen:
        assert token not in text, text
