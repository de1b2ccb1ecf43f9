"""The event types only endpoints take (issue #31), on the real stack with real receivers:
``delivery:status`` (and never about the delivery of a ``delivery:status``: no feedback loop),
``review:voted``, ``agent:status`` and ``message:updated``, chosen by name or by group, filtered
on their own objects; and a replay retried on the dispatcher's retry schedule setting."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from standardwebhooks import Webhook

from tests.conftest import Infra
from tests.dispatcher.flows import answer, answered
from tests.dispatcher.test_subscriptions import add_endpoint
from tests.support.private import PrivateStack, private_stack
from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack, eventually


async def stored_statuses(stack: RunningStack, channel_id: str, about: str) -> list[dict[str, Any]]:
    """The channel's stored delivery.status events about deliveries of ``about`` events."""
    client: AsyncMongoClient[dict[str, Any]] = stack.mongo()
    try:
        query = {"channel_id": channel_id, "type": "delivery.status", "data.event_type": about}
        return await client[stack.mongo_db]["events"].find(query).to_list()
    finally:
        await client.close()


async def endpoint_deliveries(owner: Owner, channel_id: str, endpoint_id: str) -> list[dict[str, Any]]:
    resp = await owner.agent.get(f"/api/v1/agents/{channel_id}/endpoints/{endpoint_id}/deliveries")
    assert resp.status_code == 200, resp.text
    found: list[dict[str, Any]] = resp.json()["data"]
    return found


async def test_delivery_statuses_go_to_an_endpoint_but_not_those_of_its_own_deliveries(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    agent = await owner.create_agent(webhookUrl=receiver.url("/agent"))
    ops = await add_endpoint(owner, agent["id"], url=receiver.url("/ops"), eventTypes=["delivery:*"])
    first = await answered(owner, agent["id"])
    [to_agent] = await receiver.wait_for("/agent", 1)
    [status] = await receiver.wait_for("/ops", 1)
    Webhook(ops["secret"]).verify(status.body, status.headers)
    body = status.json()
    assert (body["event"], body["channelId"]) == ("delivery:status", agent["id"])
    delivery = body["delivery"]
    assert (delivery["eventType"], delivery["messageId"], delivery["status"]) == (
        "review:responded",
        first["id"],
        "webhook_delivered",
    )
    assert (delivery["eventId"], delivery["endpointId"]) == (to_agent.headers["webhook-id"], None)

    # The delivery to /ops has a status too (it is stored and shown live), but it is not sent:
    # sending it would make one more status to send, and so on.
    async def own_status() -> list[dict[str, Any]] | None:
        found = await stored_statuses(stack, agent["id"], "delivery.status")
        return found or None

    [own] = await eventually(own_status, 20.0, "the status of the delivery to /ops stored")
    assert own["data"]["endpoint_id"] == ops["id"]
    # A later status of the same channel is in the same partition of delivery.status, after
    # that one: once it has been delivered, the dispatcher has read (and passed over) the other.
    await answered(owner, agent["id"])
    got = await receiver.wait_for("/ops", 2)
    assert [r.json()["delivery"]["eventType"] for r in got] == ["review:responded"] * 2
    listed = await endpoint_deliveries(owner, agent["id"], ops["id"])
    assert len(listed) == 2
    assert {d["eventType"] for d in listed} == {"delivery.status"}
    await asyncio.sleep(0.5)
    assert len(receiver.at("/ops")) == 2


async def test_votes_and_agent_statuses_reach_the_endpoints_that_ask(
    owner: Owner, receiver: Receiver
) -> None:
    agent = await owner.create_agent()
    reviews = await add_endpoint(owner, agent["id"], url=receiver.url("/reviews"), eventTypes=["review:*"])
    busy = await add_endpoint(
        owner,
        agent["id"],
        url=receiver.url("/busy"),
        eventTypes=["agent:status"],
        filter={"agent.status": "busy"},
    )
    plain = await add_endpoint(owner, agent["id"], url=receiver.url("/plain"))  # the default types
    quorum = {
        "type": "approval",
        "payload": {"options": [{"id": "approve", "label": "Yes"}, {"id": "reject", "label": "No"}]},
        "quorum": {"approvals": 2},
        "onExpire": {"response": {"selectedOption": "reject"}},
    }
    msg = await owner.post_message(agent["id"], text="Two of us?", review=quorum)
    voted = await owner.respond(msg["id"], {"selectedOption": "approve"})
    assert voted.status_code == 200, voted.text

    # The channel has one person: past the vote, two approvals cannot come, and the quorum
    # decides at once (rejected). review:* takes the vote and the outcome.
    got = {r.json()["event"]: r for r in await receiver.wait_for("/reviews", 2)}
    assert sorted(got) == ["review:responded", "review:voted"]
    vote = got["review:voted"]
    Webhook(reviews["secret"]).verify(vote.body, vote.headers)
    body = vote.json()
    assert (body["event"], body["message_id"], body["review_type"]) == ("review:voted", msg["id"], "approval")
    assert body["vote"]["response"] == {"selectedOption": "approve"}
    assert [v["userId"] for v in body["votes"]] == [body["vote"]["userId"]]

    for status in ("active", "busy"):
        ping = await owner.agent.post("/api/v1/status/ping", json={"agentId": agent["id"], "status": status})
        assert ping.status_code == 201, ping.text
    [went] = await receiver.wait_for("/busy", 1)
    Webhook(busy["secret"]).verify(went.body, went.headers)
    assert went.json()["event"] == "agent:status"
    assert (went.json()["agent"]["id"], went.json()["agent"]["status"]) == (agent["id"], "busy")
    await asyncio.sleep(0.5)
    assert len(receiver.at("/busy")) == 1  # "active" did not pass the filter
    # Neither a vote nor a status is a default type: only the outcome went there.
    assert [r.json()["event"] for r in receiver.at("/plain")] == ["review:responded"]
    assert len(receiver.at("/reviews")) == 2
    assert plain["eventTypes"] == ["review:responded", "review:expired"]


async def test_a_streamed_messages_updates_reach_a_message_updated_endpoint(
    owner: Owner, receiver: Receiver
) -> None:
    agent = await owner.create_agent()
    updates = await add_endpoint(
        owner, agent["id"], url=receiver.url("/updates"), eventTypes=["message:updated"], format="standard"
    )
    stream_id = f"s-{secrets.token_hex(4)}"
    created = await owner.post_message(agent["id"], text="working", streamId=stream_id)
    step = await owner.agent.post(
        f"/api/v1/messages/streams/{stream_id}/status", json={"channelId": agent["id"], "text": "half way"}
    )
    assert step.status_code == 201, step.text
    [got] = await receiver.wait_for("/updates", 1)
    Webhook(updates["secret"]).verify(got.body, got.headers)
    envelope = got.json()
    assert (envelope["type"], envelope["data"]["event"]) == ("message.updated", "message:updated")
    assert envelope["data"]["message_id"] == created["id"]
    assert [s["text"] for s in envelope["data"]["message"]["statusEvents"]] == ["half way"]


# --- replay on the dispatcher's retry schedule -------------------------------------------------


@pytest.fixture(scope="module")
def short_retries(infra: Infra) -> Iterator[PrivateStack]:
    """A dispatcher whose SAYSO_DISPATCHER_RETRY_SCHEDULE is two 1-second waits."""
    with private_stack(
        PrivateStack,
        infra,
        "schedule",
        {"dispatcher": "dispatcher"},
        ready=("dispatcher",),
        SAYSO_DISPATCHER_RETRY_SCHEDULE="1,1",
        SAYSO_DISPATCHER_SWEEP_INTERVAL_SECONDS="1",
    ) as stack:
        yield stack


@pytest.fixture
async def powner(short_retries: PrivateStack) -> AsyncIterator[Owner]:
    async with await short_retries.stack.new_owner() as created:
        yield created


async def test_a_replayed_delivery_retries_on_the_dispatchers_schedule(
    short_retries: PrivateStack, powner: Owner, receiver: Receiver
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    agent = await powner.create_agent()  # no schedule of its own: the dispatcher's applies
    await answered(powner, agent["id"])
    client: AsyncMongoClient[dict[str, Any]] = short_retries.stack.mongo()
    try:
        events = short_retries.db(client)["events"]

        async def stored() -> bool:
            query = {"channel_id": agent["id"], "type": "review.responded", "stored_at": {"$exists": True}}
            return bool(await events.count_documents(query) == 1)

        await eventually(stored, 20.0, "the answer stored")
    finally:
        await client.close()
    receiver.routes["/down"] = answer(503)
    endpoint = await add_endpoint(
        powner, agent["id"], url=receiver.url("/down"), eventTypes=["review:responded"]
    )
    window = {"from": start.isoformat(), "to": (datetime.now(UTC) + timedelta(seconds=5)).isoformat()}
    done = await powner.agent.post(
        f"/api/v1/agents/{agent['id']}/endpoints/{endpoint['id']}/replay", json=window
    )
    assert done.status_code == 202, done.text
    assert done.json()["queued"] == 1

    async def failed() -> dict[str, Any] | None:
        [one] = await endpoint_deliveries(powner, agent["id"], endpoint["id"])
        return one if one["state"] == "failed" else None

    # Two retries a second apart, then failed (the built-in schedule waits 5 s, then 5 min).
    delivery = await eventually(failed, 20.0, "the replayed delivery failed after its retries")
    assert delivery["attemptCount"] == 3
    assert len(receiver.at("/down")) == 3
