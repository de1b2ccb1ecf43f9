"""Socket.IO on ``/ws`` with the standard python-socketio client, through the Caddy edge."""

from __future__ import annotations

from typing import Any

import pytest
import socketio

from sayso_common.events import DeliveryStatusChanged, DeliveryStatusData, event_to_document
from tests.realtime.clients import Received, socket_client
from tests.support.stack import Owner, RunningStack, eventually

APPROVE = {"selectedOption": "approve"}


def _is(name: str, **fields: Any) -> Any:
    def match(item: Received) -> bool:
        return item.name == name and all(item.payload.get(k) == v for k, v in fields.items())

    return match


@pytest.mark.parametrize(
    "auth",
    [
        None,
        {},
        {"token": ""},
        {"token": "not-a-jwt"},
        {"apiKey": "sk_unknown-key-000000000000000000"},
        {"token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"},
    ],
    ids=["no-auth", "empty", "empty-token", "garbage-token", "unknown-key", "forged-jwt"],
)
async def test_bad_or_missing_credentials_are_refused_at_connect(
    stack: RunningStack, auth: dict[str, Any] | None
) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError, match="unauthorized"):
        async with socket_client(stack.url, auth):
            pass


async def test_a_channel_of_someone_else_is_refused(stack: RunningStack, owner: Owner) -> None:
    other = await stack.new_owner()
    try:
        theirs = await other.create_agent(name="not yours")
    finally:
        await other.aclose()
    with pytest.raises(socketio.exceptions.ConnectionError, match="channel not found"):
        async with socket_client(stack.url, {"token": owner.token, "channels": [theirs["id"]]}):
            pass


async def test_every_event_type_arrives_with_the_api_payloads(stack: RunningStack, owner: Owner) -> None:
    agent = await owner.create_agent(name="dashboard")
    channel = agent["id"]
    async with socket_client(stack.url, {"token": owner.token}) as (_, inbox):
        created = await owner.post_message(
            channel, text="ship it?", review={"type": "approval", "payload": {}}
        )
        got = await inbox.wait_for(_is("message:created", id=created["id"]), what="message:created")
        # The same JSON the API returned, plus the event id.
        assert {k: v for k, v in got.payload.items() if k != "eventId"} == created
        assert got.payload["eventId"].startswith("evt_")

        assert (await owner.respond(created["id"], APPROVE)).status_code == 200
        responded = await inbox.wait_for(_is("review:responded", id=created["id"]), what="review:responded")
        assert responded.payload["review"]["status"] == "completed"
        assert responded.payload["review"]["response"] == APPROVE
        api_view = (await owner.agent.get(f"/api/v1/messages/{created['id']}")).json()
        assert {k: v for k, v in responded.payload.items() if k != "eventId"} == api_view

        expiring = await owner.post_message(
            channel, text="quick", review={"type": "approval", "payload": {}, "expiresInSeconds": 1}
        )
        expired = await inbox.wait_for(_is("review:expired", id=expiring["id"]), what="review:expired")
        assert expired.payload["review"]["status"] == "expired"

        ping = await owner.agent.post(
            "/api/v1/status/ping", json={"agentId": channel, "status": "busy", "message": "thinking"}
        )
        assert ping.status_code == 201, ping.text
        status = await inbox.wait_for(_is("agent:status", agentId=channel), what="agent:status")
        assert status.payload["status"] == "busy"
        assert status.payload["message"] == "thinking"
        assert status.payload["channelId"] == channel

        delivery = await _publish_delivery_status(stack, owner, channel, created["id"])
        got = await inbox.wait_for(_is("delivery:status", eventId=delivery.id), what="delivery:status")
        assert got.payload == {
            "deliveryId": "dlv_test",
            "deliveredEventId": "evt_origin",
            "eventType": "review.responded",
            "messageId": created["id"],
            "url": "https://agent.example/hook",
            "status": "webhook_delivered",
            "attempts": 1,
            "lastStatusCode": 200,
            "lastError": None,
            "nextAttemptAt": None,
            "channelId": channel,
            "eventId": delivery.id,
        }
    ids = inbox.event_ids()
    assert len(ids) == len(set(ids)), "no event twice"


async def _publish_delivery_status(
    stack: RunningStack, owner: Owner, channel: str, message_id: str
) -> DeliveryStatusChanged:
    """``delivery.status`` is the dispatcher's event. To prove the gateway's side without a
    webhook, write one into the channel's outbox the way every service publishes (the API's relay
    takes it to Kafka from there)."""
    event = DeliveryStatusChanged(
        channel_id=channel,
        owner_id=owner.user_id,
        data=DeliveryStatusData(
            delivery_id="dlv_test",
            event_id="evt_origin",
            event_type="review.responded",
            message_id=message_id,
            url="https://agent.example/hook",
            status="webhook_delivered",
            attempts=1,
            last_status_code=200,
        ),
    )
    mongo = stack.mongo()
    try:
        await mongo.sayso.agents.update_one({"_id": channel}, {"$push": {"outbox": event_to_document(event)}})
    finally:
        await mongo.close()
    return event


async def test_an_owner_never_sees_another_owners_events(stack: RunningStack, owner: Owner) -> None:
    other = await stack.new_owner()
    try:
        mine = await owner.create_agent(name="a")
        theirs = await other.create_agent(name="b")
        async with (
            socket_client(stack.url, {"token": owner.token}) as (_, a_inbox),
            socket_client(stack.url, {"apiKey": other.api_key}) as (_, b_inbox),
        ):
            msg = await owner.post_message(mine["id"], review={"type": "approval", "payload": {}})
            assert (await owner.respond(msg["id"], APPROVE)).status_code == 200
            await owner.agent.post("/api/v1/status/ping", json={"agentId": mine["id"], "status": "active"})
            await a_inbox.wait_for(_is("review:responded", id=msg["id"]))
            await a_inbox.wait_for(_is("agent:status", agentId=mine["id"]))
            # B's own event comes after A's were fanned out: had B been sent A's, it has them now.
            own = await other.post_message(theirs["id"], text="b's own")
            await b_inbox.wait_for(_is("message:created", id=own["id"]))
        assert {i.payload["channelId"] for i in b_inbox.items} == {theirs["id"]}
        assert {i.payload["channelId"] for i in a_inbox.items} == {mine["id"]}
    finally:
        await other.aclose()


async def test_channels_narrow_the_subscription_and_new_channels_reach_the_owner(
    stack: RunningStack, owner: Owner
) -> None:
    first = await owner.create_agent(name="first")
    second = await owner.create_agent(name="second")
    async with (
        socket_client(stack.url, {"apiKey": owner.api_key, "channels": [first["id"]]}) as (_, narrow),
        socket_client(stack.url, {"token": owner.token}) as (_, everything),
    ):
        # Created after both sockets connected: the all-channels socket still hears of it.
        later = await owner.create_agent(name="later")
        for agent in (second, later, first):
            await owner.post_message(agent["id"], text=f"to {agent['name']}")
        for agent in (second, later, first):
            await everything.wait_for(_is("message:created", channelId=agent["id"]), what=agent["name"])
        await narrow.wait_for(_is("message:created", channelId=first["id"]))
    assert {i.payload["channelId"] for i in narrow.items} == {first["id"]}


async def test_a_client_resumes_with_the_last_event_id_it_saw(stack: RunningStack, owner: Owner) -> None:
    agent = await owner.create_agent(name="flaky dashboard")
    channel = agent["id"]
    async with socket_client(stack.url, {"token": owner.token}) as (_, before):
        seen = await owner.post_message(channel, text="seen live")
        last = (await before.wait_for(_is("message:created", id=seen["id"]))).payload["eventId"]
    # Disconnected: these happen while nobody listens.
    missed = [
        await owner.post_message(channel, text=f"missed {i}", review={"type": "approval", "payload": {}})
        for i in range(3)
    ]
    assert (await owner.respond(missed[0]["id"], APPROVE)).status_code == 200
    await owner.agent.post("/api/v1/status/ping", json={"agentId": channel, "status": "error"})
    mongo = stack.mongo()
    try:
        await eventually(
            lambda: mongo.sayso.events.find_one({"channel_id": channel, "type": "agent.status"}),
            what="the missed events stored",
        )
    finally:
        await mongo.close()
    async with socket_client(stack.url, {"token": owner.token, "lastEventId": last}) as (_, after):
        await after.wait_for(_is("agent:status", agentId=channel), what="the last missed event")
        live = await owner.post_message(channel, text="live again")
        await after.wait_for(_is("message:created", id=live["id"]), what="live after replay")
    names = [(i.name, i.payload.get("id")) for i in after.items]
    # Every missed event exactly once, plus the live one; replay comes first. (Topics are
    # consumed independently, so an event the gateway had not consumed yet when the client came
    # back may arrive after a newer live one: order is per channel and topic, not global.)
    assert sorted(names) == sorted(
        [
            ("message:created", missed[0]["id"]),
            ("message:created", missed[1]["id"]),
            ("message:created", missed[2]["id"]),
            ("review:responded", missed[0]["id"]),
            ("agent:status", None),
            ("message:created", live["id"]),
        ]
    ), [(i.name, i.payload.get("id"), i.payload["eventId"]) for i in after.items]
    assert names[0] == ("message:created", missed[0]["id"])
    assert seen["id"] not in {i.payload.get("id") for i in after.items}
    assert len(set(after.event_ids())) == len(after.items)
