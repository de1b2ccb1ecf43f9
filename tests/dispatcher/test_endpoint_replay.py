"""Recover and replay per webhook endpoint (issue #31 item 3), against the real stack and real
receivers: recover re-sends an endpoint's failed deliveries with the same webhook-id; replay gives
an endpoint made after the fact the stored events it matches, once each."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from standardwebhooks import Webhook

from sayso_api.replay import ReplayIn, replay
from tests.dispatcher.flows import answer, answered, deliveries
from tests.dispatcher.test_subscriptions import add_endpoint
from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack, eventually


@pytest.fixture(scope="module")
async def pair(stack: RunningStack) -> AsyncIterator[list[Owner]]:
    async with stack.new_owners(2) as people:
        yield people


def iso(at: datetime) -> str:
    return at.isoformat()


async def stored(stack: RunningStack, channel_id: str, event_type: str, count: int) -> None:
    """Wait until the relay stored ``count`` events of the type for the channel (replay reads them)."""
    client: AsyncMongoClient[dict[str, Any]] = stack.mongo()
    try:
        events = client[stack.mongo_db]["events"]
        query = {"channel_id": channel_id, "type": event_type, "stored_at": {"$exists": True}}

        async def enough() -> bool:
            return await events.count_documents(query) >= count

        await eventually(enough, 20.0, f"{count} stored {event_type} events")
    finally:
        await client.close()


async def test_recover_resends_an_endpoints_failed_deliveries_with_the_same_webhook_id(
    pair: list[Owner], receiver: Receiver
) -> None:
    owner, outsider = pair
    since = datetime.now(UTC) - timedelta(minutes=1)
    receiver.routes["/down"] = answer(500)
    receiver.routes["/agent-down"] = answer(500)
    # No retries: each delivery fails at its first attempt.
    agent = await owner.create_agent(webhookUrl=receiver.url("/agent-down"), webhookRetrySchedule=[])
    endpoint = await add_endpoint(owner, agent["id"], url=receiver.url("/down"))
    msg = await answered(owner, agent["id"])

    async def both_failed() -> list[dict[str, Any]] | None:
        found = await deliveries(owner, msg["id"])
        return found if len(found) == 2 and all(d["state"] == "failed" for d in found) else None

    found = await eventually(both_failed, 20.0, "both deliveries failed")
    mine = next(d for d in found if d["endpointId"] == endpoint["id"])
    [first] = receiver.at("/down")

    path = f"/api/v1/agents/{agent['id']}/endpoints/{endpoint['id']}/recover"
    assert (await outsider.agent.post(path, json={"since": iso(since)})).status_code == 404
    receiver.routes["/down"] = answer(200)
    resp = await owner.agent.post(path, json={"since": iso(since)})
    assert resp.status_code == 202, resp.text
    assert (resp.json()["requeued"], resp.json()["more"]) == (1, False)

    [_, again] = await receiver.wait_for("/down", 2)
    assert again.headers["webhook-id"] == first.headers["webhook-id"] == mine["eventId"]
    assert again.body == first.body
    Webhook(endpoint["secret"]).verify(again.body, again.headers)

    async def delivered() -> bool:
        now = {d["endpointId"]: d for d in await deliveries(owner, msg["id"])}
        return bool(now[endpoint["id"]]["state"] == "delivered" and now[None]["state"] == "failed")

    await eventually(delivered, 20.0, "the endpoint's delivery delivered, the agent's still failed")
    # Only this endpoint's failures: the agent's own URL was not sent again.
    await asyncio.sleep(0.5)
    assert len(receiver.at("/agent-down")) == 1
    # Nothing failed any more: a second recover re-sends nothing.
    resp = await owner.agent.post(path, json={"since": iso(since)})
    assert resp.json()["requeued"] == 0


async def test_replay_gives_a_new_endpoint_the_matching_stored_events_once(
    stack: RunningStack, pair: list[Owner], receiver: Receiver
) -> None:
    owner, outsider = pair
    start = datetime.now(UTC) - timedelta(seconds=5)
    agent = await owner.create_agent()
    prod = [await answered(owner, agent["id"], metadata={"env": "prod"}) for _ in range(2)]
    await answered(owner, agent["id"], metadata={"env": "staging"})
    await stored(stack, agent["id"], "review.responded", 3)
    end = datetime.now(UTC) + timedelta(seconds=5)

    # Made after the events: nothing was ever sent to it.
    endpoint = await add_endpoint(
        owner,
        agent["id"],
        url=receiver.url("/replayed"),
        eventTypes=["review:responded"],
        filter={"message.metadata.env": "prod"},
    )
    path = f"/api/v1/agents/{agent['id']}/endpoints/{endpoint['id']}/replay"
    window = {"from": iso(start), "to": iso(end)}
    assert (await outsider.agent.post(path, json=window)).status_code == 404

    resp = await owner.agent.post(path, json=window)
    assert resp.status_code == 202, resp.text
    first = resp.json()
    assert (first["queued"], first["requeued"], first["skipped"], first["more"]) == (2, 0, 0, False)
    assert first["scanned"] >= 3  # message:created events too, which this endpoint does not take

    got = await receiver.wait_for("/replayed", 2)
    assert sorted(r.json()["message_id"] for r in got) == sorted(m["id"] for m in prod)
    for r in got:
        assert r.json()["event"] == "review:responded"
        Webhook(endpoint["secret"]).verify(r.body, r.headers)
    listed = (
        await owner.agent.get(f"/api/v1/agents/{agent['id']}/endpoints/{endpoint['id']}/deliveries")
    ).json()["data"]
    assert {r.headers["webhook-id"] for r in got} == {d["eventId"] for d in listed}

    # Idempotent per (event, endpoint): a second replay sends nothing new.
    again = (await owner.agent.post(path, json=window)).json()
    assert (again["queued"], again["requeued"], again["skipped"]) == (0, 0, 2)
    await asyncio.sleep(0.5)
    assert len(receiver.at("/replayed")) == 2


async def test_replay_resends_a_failed_delivery_of_the_range_not_a_second_one(
    stack: RunningStack, pair: list[Owner], receiver: Receiver
) -> None:
    owner = pair[0]
    start = datetime.now(UTC) - timedelta(seconds=5)
    receiver.routes["/was-down"] = answer(500)
    agent = await owner.create_agent(webhookRetrySchedule=[])
    endpoint = await add_endpoint(owner, agent["id"], url=receiver.url("/was-down"))
    msg = await answered(owner, agent["id"])
    await stored(stack, agent["id"], "review.responded", 1)

    async def failed() -> bool:
        found = await deliveries(owner, msg["id"])
        return len(found) == 1 and found[0]["state"] == "failed"

    await eventually(failed, 20.0, "the endpoint's delivery failed")
    receiver.routes["/was-down"] = answer(200)
    path = f"/api/v1/agents/{agent['id']}/endpoints/{endpoint['id']}/replay"
    window = {"from": iso(start), "to": iso(datetime.now(UTC) + timedelta(seconds=5))}
    done = (await owner.agent.post(path, json=window)).json()
    assert (done["queued"], done["requeued"], done["skipped"]) == (0, 1, 0)
    [first, again] = await receiver.wait_for("/was-down", 2)
    assert again.headers["webhook-id"] == first.headers["webhook-id"]
    assert len(await deliveries(owner, msg["id"])) == 1


async def test_replay_is_bounded_and_continues_from_its_cursor(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    agent = await owner.create_agent()
    for _ in range(3):
        await answered(owner, agent["id"])
    await stored(stack, agent["id"], "review.responded", 3)
    endpoint = await add_endpoint(
        owner, agent["id"], url=receiver.url("/paged"), eventTypes=["review:responded"]
    )
    body = ReplayIn.model_validate({"from": start, "to": datetime.now(UTC) + timedelta(seconds=5)})
    client: AsyncMongoClient[dict[str, Any]] = stack.mongo()
    try:
        db = client[stack.mongo_db]
        queued, calls, answer_ = 0, 0, None
        while answer_ is None or answer_.more:
            if answer_ is not None:
                body = body.model_copy(update={"after": answer_.next_cursor})
            answer_ = await replay(
                db, owner.user_id, agent["id"], endpoint["id"], body, timedelta(days=1), limit=2
            )
            assert answer_.scanned <= 2
            queued += answer_.queued
            calls += 1
            assert calls < 10
    finally:
        await client.close()
    assert queued == 3
    assert calls >= 3  # 6 events (created + responded per message), two per call
    await receiver.wait_for("/paged", 3)


@pytest.fixture(scope="module")
async def asker(stack: RunningStack) -> AsyncIterator[Owner]:
    """The owner the table of bad ranges asks with: one for the module, not two Argon2 hashes a
    case (each case adds, then deletes, an endpoint of its own)."""
    async with stack.new_owners(1) as [one]:
        yield one


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": "2030-01-01T00:00:00Z"}, "from"),
        ({"from": "2030-01-01T00:00:00Z"}, "to"),
        ({"from": "not a time", "to": "2030-01-01T00:00:00Z"}, "from"),
        ({"from": "2030-01-02T00:00:00Z", "to": "2030-01-01T00:00:00Z"}, "to"),
        ({"from": "2030-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"}, "to"),
        ({"from": "2000-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"}, "from"),
        ({"from": "2030-01-01T00:00:00Z", "to": "2030-01-02T00:00:00Z", "after": "nope"}, "after"),
    ],
)
async def test_bad_replay_ranges_get_a_422_naming_the_field(
    asker: Owner, receiver: Receiver, body: dict[str, Any], field: str
) -> None:
    endpoint = await add_endpoint(asker, None, url=receiver.url("/ranges"))
    try:
        resp = await asker.agent.post(f"/api/v1/endpoints/{endpoint['id']}/replay", json=body)
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["field"] == field
    finally:
        await asker.agent.delete(f"/api/v1/endpoints/{endpoint['id']}")
