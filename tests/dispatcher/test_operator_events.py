"""Operator events on a private stack with two dispatcher replicas, a notifier and a real SMTP
server: a storm of deliveries to a dead target (a receiver answering 410 or 500) yields one
``operator:*`` event at the owner's ops endpoint and one e-mail per incident, and once the
incident is over (the target recovered or was re-enabled) the next one is told again.

"Exactly one" is read where it cannot be missed: the relay copies every event it publishes into
the ``events`` collection, so once every delivery of the storm has settled, that collection holds
every operator event there will ever be about it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from standardwebhooks import Webhook

from sayso_common.mongo import Doc
from tests.conftest import Infra
from tests.dispatcher.flows import answer, answered
from tests.notifier.mailbox import Mail, Mailbox
from tests.support.private import PrivateStack, private_stack
from tests.support.receiver import Receiver
from tests.support.stack import Owner, eventually

pytestmark = pytest.mark.slow

OPERATOR_TYPES = ["operator:endpoint_disabled", "operator:retries_exhausted", "operator:circuit_open"]
HEADLINES = {
    "operator.endpoint_disabled": "Webhook endpoint disabled",
    "operator.retries_exhausted": "Webhook deliveries failing",
    "operator.circuit_open": "Webhook receiver unreachable",
}


@dataclass
class Ops(PrivateStack):
    mailbox: Mailbox


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox().start()
    yield box
    box.stop()


@pytest.fixture(scope="module")
def ops(infra: Infra, mailbox: Mailbox) -> Iterator[Ops]:
    with private_stack(
        Ops,
        infra,
        "opev",
        {"dispatcher-a": "dispatcher", "dispatcher-b": "dispatcher", "notifier": "notifier"},
        ready=("dispatcher-a", "dispatcher-b", "notifier"),
        extra={"mailbox": mailbox},
        SAYSO_SMTP_URL=mailbox.url,
        SAYSO_DISPATCHER_TIMEOUT_SECONDS="2",
        SAYSO_DISPATCHER_LEASE_SECONDS="5",
        SAYSO_DISPATCHER_SESSION_TIMEOUT_MS="6000",
        SAYSO_DISPATCHER_SWEEP_INTERVAL_SECONDS="1",
        SAYSO_DISPATCHER_CIRCUIT_MIN_CALLS="3",
        SAYSO_DISPATCHER_CIRCUIT_OPEN_SECONDS="1",
        SAYSO_DISPATCHER_CIRCUIT_ALERT_SECONDS="2",
        SAYSO_DISPATCHER_DISABLE_AFTER_FAILURES="3",
        SAYSO_NOTIFIER_LEASE_SECONDS="4",
        SAYSO_NOTIFIER_TIMEOUT_SECONDS="2",
        SAYSO_SMTP_TIMEOUT_SECONDS="3",
        SAYSO_NOTIFIER_RETRY_SCHEDULE="1,1,1",
        SAYSO_NOTIFIER_SWEEP_INTERVAL_SECONDS="1",
        SAYSO_NOTIFIER_SESSION_TIMEOUT_MS="6000",
    ) as stack:
        yield stack


@pytest.fixture
async def powner(ops: Ops) -> AsyncIterator[Owner]:
    async with await ops.stack.new_owner() as created:
        yield created


@pytest.fixture
async def mongo(infra: Infra) -> AsyncIterator[AsyncMongoClient[Doc]]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    yield client
    await client.close()


async def add_endpoint(owner: Owner, channel: str | None, **body: Any) -> dict[str, Any]:
    path = f"/api/v1/agents/{channel}/endpoints" if channel else "/api/v1/endpoints"
    resp = await owner.agent.post(path, json=body)
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def ops_endpoint(owner: Owner, receiver: Receiver, path: str) -> dict[str, Any]:
    """The owner's account-wide ops endpoint: subscribed to the operator events only."""
    return await add_endpoint(owner, None, url=receiver.url(path), eventTypes=OPERATOR_TYPES)


async def storm(owner: Owner, channel: str, count: int) -> list[str]:
    """``count`` reviews answered at once: as many deliveries racing to the channel's targets."""
    made = await asyncio.gather(*(answered(owner, channel) for _ in range(count)))
    return [m["id"] for m in made]


async def settled(db: Any, owner: Owner, count: int, witness: str, timeout: float = 40.0) -> None:
    """Wait until every event of the storm became its deliveries and each of them is final.
    ``witness`` is the source (``agent``, ``endpoint``) of a target that gets every event: a
    disabled target gets no deliveries for events that arrive after, so it cannot be counted."""
    review = {"owner_id": owner.user_id, "event_type": {"$not": {"$regex": "^operator[.]"}}}

    async def done() -> bool:
        made = await db["deliveries"].count_documents({**review, "source": witness})
        pending = await db["deliveries"].count_documents({**review, "state": "pending"})
        return bool(made >= count and pending == 0)

    await eventually(done, timeout, f"{count} events' deliveries settled")


async def published(db: Any, owner: Owner, kind: str, count: int, timeout: float = 30.0) -> list[Doc]:
    """The owner's ``kind`` events the relay published, once there are ``count``."""

    async def found() -> list[Doc] | None:
        docs: list[Doc] = await db["events"].find({"owner_id": owner.user_id, "type": kind}).to_list()
        return docs if len(docs) >= count else None

    return await eventually(found, timeout, f"{count} {kind} event(s) published")


async def told_to_ops(receiver: Receiver, path: str, kind: str, count: int) -> list[dict[str, Any]]:
    """The distinct ``kind`` events the ops endpoint received (by webhook-id: retries are one)."""

    async def arrived() -> list[dict[str, Any]] | None:
        seen: dict[str, dict[str, Any]] = {}
        for got in receiver.at(path):
            body = got.json()
            if body["event"] == kind:
                seen.setdefault(got.headers["webhook-id"], body)
        return list(seen.values()) if len(seen) >= count else None

    return await eventually(arrived, 30.0, f"{count} {kind} at {path}")


async def mailed(mailbox: Mailbox, owner: Owner, kind: str, count: int) -> list[Mail]:
    async def arrived() -> list[Mail] | None:
        mails = [m for m in mailbox.to(owner.email) if HEADLINES[kind] in m.subject]
        return mails if len(mails) >= count else None

    return await eventually(arrived, 30.0, f"{count} {kind} mail(s) to {owner.email}")


async def sent_notices(db: Any, owner: Owner, kind: str) -> int:
    purpose = "operator:" + kind.removeprefix("operator.")
    return int(await db["notifications"].count_documents({"owner_id": owner.user_id, "purpose": purpose}))


async def exactly(
    db: Any, mailbox: Mailbox, receiver: Receiver, path: str, owner: Owner, kind: str, count: int
) -> list[Doc]:
    """``count`` ``kind`` events published, at the ops endpoint, and e-mailed; no more."""
    events = await published(db, owner, kind, count)
    await told_to_ops(receiver, path, kind.replace(".", ":"), count)
    await mailed(mailbox, owner, kind, count)
    assert len(events) == count, [e["data"]["reason"] for e in events]
    assert len({e["data"]["incident_id"] for e in events}) == count
    assert len(await told_to_ops(receiver, path, kind.replace(".", ":"), count)) == count
    assert len([m for m in mailbox.to(owner.email) if HEADLINES[kind] in m.subject]) == count
    assert await sent_notices(db, owner, kind) == count
    return events


async def test_a_410_storm_disables_an_endpoint_once_and_tells_once_per_disabling(
    ops: Ops, powner: Owner, receiver: Receiver, mongo: AsyncMongoClient[Doc]
) -> None:
    db = ops.db(mongo)
    hooks = await ops_endpoint(powner, receiver, "/ops-gone")
    # The agent's own URL is healthy: it gets every event (the witness that all were handled).
    agent = await powner.create_agent(name="gone-bot", webhookUrl=receiver.url("/ok-gone"))
    receiver.routes["/gone"] = answer(410)
    endpoint = await add_endpoint(powner, agent["id"], url=receiver.url("/gone"))

    await storm(powner, agent["id"], 8)
    await settled(db, powner, 8, "agent")
    [event] = await exactly(db, ops.mailbox, receiver, "/ops-gone", powner, "operator.endpoint_disabled", 1)
    assert event["channel_id"] == agent["id"]
    assert event["data"]["endpoint_id"] == endpoint["id"]
    assert "410 Gone" in event["data"]["reason"]
    # What the ops endpoint got: signed with its own secret, the incident in camelCase.
    [got] = [r for r in receiver.at("/ops-gone") if r.json()["event"] == "operator:endpoint_disabled"][:1]
    body = Webhook(hooks["secret"]).verify(got.body, got.headers)
    assert body["endpointId"] == endpoint["id"]
    assert body["url"] == receiver.url("/gone")
    assert body["incidentId"] == event["data"]["incident_id"]
    assert got.headers["webhook-id"] == event["_id"]
    [mail] = [m for m in ops.mailbox.to(powner.email) if "endpoint disabled" in m.subject]
    assert receiver.url("/gone") in mail.part("plain")
    assert "410 Gone" in mail.part("plain")
    stored = (await powner.agent.get(f"/api/v1/agents/{agent['id']}/endpoints/{endpoint['id']}")).json()
    assert stored["disabled"] is True
    assert "410" in stored["disabledReason"]

    # Re-enabled while the receiver still answers 410: a new incident, told again, once.
    resp = await powner.agent.patch(
        f"/api/v1/agents/{agent['id']}/endpoints/{endpoint['id']}", json={"disabled": False}
    )
    assert resp.status_code == 200, resp.text
    # Re-enabling ends the incidents of the endpoint (the API closes them).
    closed = await db["incidents"].find_one({"kind": "endpoint_disabled", "endpoint_id": endpoint["id"]})
    assert closed["state"] == "resolved"
    assert closed["resolution"] == "re-enabled by its owner"
    await storm(powner, agent["id"], 5)
    await settled(db, powner, 13, "agent")
    await exactly(db, ops.mailbox, receiver, "/ops-gone", powner, "operator.endpoint_disabled", 2)


async def test_the_agents_own_url_answering_410_is_an_incident_too(
    ops: Ops, powner: Owner, receiver: Receiver, mongo: AsyncMongoClient[Doc]
) -> None:
    db = ops.db(mongo)
    await ops_endpoint(powner, receiver, "/ops-default")
    receiver.routes["/gone-default"] = answer(410)
    agent = await powner.create_agent(name="default-bot", webhookUrl=receiver.url("/gone-default"))
    await add_endpoint(powner, agent["id"], url=receiver.url("/ok-default"))  # the witness
    await storm(powner, agent["id"], 6)
    await settled(db, powner, 6, "endpoint")
    [event] = await exactly(
        db, ops.mailbox, receiver, "/ops-default", powner, "operator.endpoint_disabled", 1
    )
    assert event["data"]["endpoint_id"] is None
    assert event["data"]["url"] == receiver.url("/gone-default")
    assert (await powner.agent.get(f"/api/v1/agents/{agent['id']}")).json()["webhookEnabled"] is False

    resp = await powner.agent.patch(f"/api/v1/agents/{agent['id']}", json={"webhookEnabled": True})
    assert resp.status_code == 200, resp.text
    await storm(powner, agent["id"], 3)
    await settled(db, powner, 9, "endpoint")
    await exactly(db, ops.mailbox, receiver, "/ops-default", powner, "operator.endpoint_disabled", 2)


async def test_exhausted_retries_are_told_once_until_a_delivery_succeeds(
    ops: Ops, powner: Owner, receiver: Receiver, mongo: AsyncMongoClient[Doc]
) -> None:
    db = ops.db(mongo)
    await ops_endpoint(powner, receiver, "/ops-down")
    receiver.routes["/down"] = answer(500)
    agent = await powner.create_agent(
        name="down-bot", webhookUrl=receiver.url("/down"), webhookRetrySchedule=[1]
    )
    await storm(powner, agent["id"], 8)
    await settled(db, powner, 8, "agent")
    [event] = await exactly(db, ops.mailbox, receiver, "/ops-down", powner, "operator.retries_exhausted", 1)
    assert "failed for good after 2 attempt(s)" in event["data"]["reason"]
    assert event["data"]["delivery_event_type"] == "review.responded"
    # The agent's own URL is never disabled for failing (only a 410 does that).
    assert (await powner.agent.get(f"/api/v1/agents/{agent['id']}")).json()["webhookEnabled"] is True

    # It recovers: a delivery that succeeds ends the incident ...
    receiver.routes["/down"] = answer(200)
    await storm(powner, agent["id"], 1)
    await settled(db, powner, 9, "agent")

    async def ended() -> bool:
        doc = await db["incidents"].find_one({"kind": "retries_exhausted", "owner_id": powner.user_id})
        return doc is not None and doc["state"] == "resolved"

    await eventually(ended, 20.0, "the incident ended")
    # ... and the next failure is a new incident, told once more.
    receiver.routes["/down"] = answer(500)
    await storm(powner, agent["id"], 4)
    await settled(db, powner, 13, "agent")
    await exactly(db, ops.mailbox, receiver, "/ops-down", powner, "operator.retries_exhausted", 2)


async def test_an_endpoint_whose_deliveries_keep_failing_is_disabled_and_told_once(
    ops: Ops, powner: Owner, receiver: Receiver, mongo: AsyncMongoClient[Doc]
) -> None:
    db = ops.db(mongo)
    await ops_endpoint(powner, receiver, "/ops-failing")
    receiver.routes["/failing"] = answer(400)  # fails for good at once, and says the host is up
    agent = await powner.create_agent(name="failing-bot", webhookUrl=receiver.url("/ok-failing"))
    endpoint = await add_endpoint(powner, agent["id"], url=receiver.url("/failing"))
    await storm(powner, agent["id"], 6)
    await settled(db, powner, 6, "agent")
    [disabled] = await exactly(
        db, ops.mailbox, receiver, "/ops-failing", powner, "operator.endpoint_disabled", 1
    )
    # At least the threshold (3): failures recorded side by side may all cross it at once.
    count, rest = disabled["data"]["reason"].split(" ", 1)
    assert int(count) >= 3
    assert rest == "deliveries in a row failed for good"
    await exactly(db, ops.mailbox, receiver, "/ops-failing", powner, "operator.retries_exhausted", 1)
    stored = (await powner.agent.get(f"/api/v1/agents/{agent['id']}/endpoints/{endpoint['id']}")).json()
    assert stored["disabled"] is True
    assert stored["disabledReason"] == disabled["data"]["reason"]


async def test_a_circuit_open_too_long_is_told_once_until_it_closes(
    ops: Ops, powner: Owner, receiver: Receiver, mongo: AsyncMongoClient[Doc]
) -> None:
    db = ops.db(mongo)
    await ops_endpoint(powner, receiver, "/ops-circuit")
    receiver.routes["/flaky"] = answer(503)
    agent = await powner.create_agent(
        name="flaky-bot", webhookUrl=receiver.url("/flaky"), webhookRetrySchedule=[2] * 20
    )
    await storm(powner, agent["id"], 6)
    [event] = await published(db, powner, "operator.circuit_open", 1)
    assert "circuit breaker has refused requests" in event["data"]["reason"]
    await told_to_ops(receiver, "/ops-circuit", "operator:circuit_open", 1)
    await mailed(ops.mailbox, powner, "operator.circuit_open", 1)

    # The receiver comes back: the circuits close, every delivery lands, the incident ends.
    receiver.routes["/flaky"] = answer(200)
    await settled(db, powner, 6, "agent")

    async def ended() -> bool:
        doc = await db["incidents"].find_one({"kind": "circuit_open", "owner_id": powner.user_id})
        return doc is not None and doc["state"] == "resolved"

    await eventually(ended, 20.0, "the circuit incident ended")
    await exactly(db, ops.mailbox, receiver, "/ops-circuit", powner, "operator.circuit_open", 1)

    # Down again: a new incident once a circuit has been open long enough again.
    receiver.routes["/flaky"] = answer(503)
    await storm(powner, agent["id"], 6)
    await published(db, powner, "operator.circuit_open", 2)
    receiver.routes["/flaky"] = answer(200)
    await settled(db, powner, 12, "agent")
    await exactly(db, ops.mailbox, receiver, "/ops-circuit", powner, "operator.circuit_open", 2)


async def test_an_ops_endpoint_that_fails_raises_nothing_about_itself_and_opting_out_stops_the_mail(
    ops: Ops, powner: Owner, receiver: Receiver, mongo: AsyncMongoClient[Doc]
) -> None:
    db = ops.db(mongo)
    resp = await powner.human.put("/api/v1/users/me/notifications", json={"operatorEmails": False})
    assert resp.status_code == 200, resp.text
    assert resp.json()["operatorEmails"] is False
    # The ops endpoint itself answers 410: delivering the operator event disables it, and that is
    # no incident (nothing is raised about an operator event's own delivery: no loops).
    receiver.routes["/ops-dead"] = answer(410)
    hooks = await ops_endpoint(powner, receiver, "/ops-dead")
    receiver.routes["/gone-too"] = answer(410)
    agent = await powner.create_agent(name="quiet-bot", webhookUrl=receiver.url("/gone-too"))
    await add_endpoint(powner, agent["id"], url=receiver.url("/ok-quiet"))  # the witness
    await storm(powner, agent["id"], 4)
    await settled(db, powner, 4, "endpoint")
    await published(db, powner, "operator.endpoint_disabled", 1)
    await receiver.wait_for("/ops-dead", 1)

    async def ops_disabled() -> bool:
        doc = await db["endpoints"].find_one({"_id": hooks["id"]})
        return doc is not None and doc["disabled"] is True

    await eventually(ops_disabled, 20.0, "the ops endpoint disabled by its 410")

    async def operator_delivery_failed() -> bool:
        found = await db["deliveries"].find({"endpoint_id": hooks["id"]}).to_list()
        return bool(found) and all(d["state"] == "failed" for d in found)

    # Disabled before its outcome is recorded (sayso_dispatcher.worker): wait for both.
    await eventually(operator_delivery_failed, 20.0, "the operator event's delivery failed")
    assert await db["incidents"].find({"subject": {"$regex": hooks["id"]}}).to_list() == []
    assert (
        await db["events"].count_documents({"owner_id": powner.user_id, "type": {"$regex": "^operator[.]"}})
        == 1
    )
    # Opted out: the notifier plans no e-mail (a bounded wait: nothing positive marks its absence).
    await asyncio.sleep(3)
    assert await sent_notices(db, powner, "operator.endpoint_disabled") == 0
    assert not [m for m in ops.mailbox.to(powner.email) if "[Sayso] Webhook" in m.subject]
