"""Several dispatcher processes on a private stack (its own database, topic prefix and consumer
group, so the shared stack's dispatcher takes no part): they split the work, survive SIGKILL,
keep a hung receiver from slowing healthy ones, and reconcile events the broker lost."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from sayso_common.clock import utcnow
from sayso_common.ids import new_id
from tests.conftest import Infra
from tests.dispatcher.flows import APPROVAL, answered, settled
from tests.support.private import PrivateStack, private_stack
from tests.support.receiver import Received, Receiver
from tests.support.stack import Owner, eventually

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def private(infra: Infra) -> Iterator[PrivateStack]:
    with private_stack(
        PrivateStack,
        infra,
        "replicas",
        {"dispatcher-a": "dispatcher", "dispatcher-b": "dispatcher"},
        ready=("dispatcher-a", "dispatcher-b"),
        SAYSO_DISPATCHER_TIMEOUT_SECONDS="2",
        SAYSO_DISPATCHER_LEASE_SECONDS="5",
        SAYSO_DISPATCHER_SESSION_TIMEOUT_MS="6000",
        SAYSO_DISPATCHER_RETRY_SCHEDULE="1,1,1",
        SAYSO_DISPATCHER_PER_HOST_CONCURRENCY="4",
        SAYSO_DISPATCHER_SWEEP_INTERVAL_SECONDS="1",
        SAYSO_DISPATCHER_CIRCUIT_MIN_CALLS="4",
        SAYSO_DISPATCHER_CIRCUIT_OPEN_SECONDS="3",
        SAYSO_DISPATCHER_RECONCILE_INTERVAL_SECONDS="1",
        SAYSO_DISPATCHER_RECONCILE_GRACE_SECONDS="2",
    ) as stack:
        yield stack


@pytest.fixture
async def powner(private: PrivateStack) -> AsyncIterator[Owner]:
    async with await private.stack.new_owner() as created:
        yield created


async def _respond_all(owner: Owner, agents: list[dict[str, Any]], per_agent: int) -> list[str]:
    """Post and answer ``per_agent`` reviews on each agent; returns message ids."""
    ids: list[str] = []
    for _ in range(per_agent):
        for agent in agents:
            ids.append((await answered(owner, agent["id"]))["id"])
    return ids


async def _metric(private: PrivateStack, name: str) -> float:
    total = 0.0
    async with httpx.AsyncClient(timeout=5) as client:
        for proc in private.procs.values():
            if not proc.alive:
                continue
            text = (await client.get(f"http://127.0.0.1:{proc.port}/metrics")).text
            for line in text.splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    total += float(line.rsplit(" ", 1)[1])
    return total


async def test_hung_receiver_does_not_delay_healthy_ones(
    private: PrivateStack, powner: Owner, receiver: Receiver
) -> None:
    release = asyncio.Event()

    async def hang(_: web.Request, __: Received) -> web.StreamResponse:
        # Hangs 10 s unless the test ends first (the dispatchers' timeout here is 2 s).
        await asyncio.wait_for(release.wait(), 10)
        return web.Response(status=200)

    hung = await Receiver().start()
    hung.routes["/hang"] = hang
    try:
        stuck = await powner.create_agent(webhookUrl=hung.url("/hang"))
        healthy = await powner.create_agent(webhookUrl=receiver.url("/fine"))
        await _respond_all(powner, [stuck], 12)
        await hung.wait_for("/hang", 4)  # the hung host now holds its slots

        started = time.monotonic()
        msgs = await _respond_all(powner, [healthy], 10)
        await receiver.wait_for("/fine", 10, timeout=20)
        elapsed = time.monotonic() - started
        # Well under one hang (10 s), let alone the queue of them ahead.
        assert elapsed < 8, elapsed
        for mid in msgs:
            await settled(powner, mid, "delivered")
        # Timeouts count as failures: the hung host's circuit opens and its work waits in MongoDB.
        await eventually(
            lambda: _metric(private, "sayso_webhook_open_circuits"), timeout=30, what="circuit opened"
        )
    finally:
        release.set()
        await hung.stop()


async def test_two_processes_share_the_work(private: PrivateStack, powner: Owner, receiver: Receiver) -> None:
    agents = [await powner.create_agent(webhookUrl=receiver.url("/shared")) for _ in range(12)]
    seen_by: set[str] = set()
    messages: list[str] = []
    deadline = time.monotonic() + 40
    while len(seen_by) < 2 and time.monotonic() < deadline:
        batch = await _respond_all(powner, agents, 1)
        messages += batch
        await receiver.wait_for("/shared", len(messages), timeout=30)
        for mid in batch:
            delivery = await settled(powner, mid, "delivered")
            seen_by.update(a["by"].rsplit("-", 1)[0] for a in delivery["attempts"])
    assert seen_by == {"dispatcher-a", "dispatcher-b"}
    ids = Counter(r.headers["webhook-id"] for r in receiver.at("/shared"))
    assert len(ids) == len(messages)
    assert max(ids.values()) == 1  # each delivery attempted once, by one process


async def test_reconciliation_delivers_what_the_broker_lost(
    private: PrivateStack, powner: Owner, receiver: Receiver
) -> None:
    agent = await powner.create_agent(webhookUrl=receiver.url("/lost"))
    now = utcnow()
    message_id = new_id("msg")
    mongo = private.stack.mongo()
    try:
        # A review answered whose event never reached Kafka: written straight to MongoDB,
        # with nothing in the outbox.
        await private.db(mongo).messages.insert_one(
            {
                "_id": message_id,
                "channel_id": agent["id"],
                "owner_id": powner.user_id,
                "sender_type": "agent",
                "text": "lost in the broker",
                "status": "info",
                "created_at": now,
                "updated_at": now,
                "delivery_status": "sent",
                "review": {
                    **APPROVAL,
                    "status": "completed",
                    "expires_at": now,
                    "response": {"selectedOption": "no"},
                    "responded_by": powner.user_id,
                    "responded_at": now,
                },
            }
        )
        [got] = await receiver.wait_for("/lost", timeout=30)
        body = got.json()
        assert body["event"] == "review:responded"
        assert body["message_id"] == message_id
        assert body["response"] == {"selectedOption": "no"}
        await settled(powner, message_id, "delivered")
        assert await private.db(mongo).deliveries.count_documents({"message_id": message_id}) == 1
    finally:
        await mongo.close()


async def test_sigkill_mid_batch_loses_nothing(
    private: PrivateStack, powner: Owner, receiver: Receiver
) -> None:
    async def slow(_: web.Request, __: Received) -> web.StreamResponse:
        await asyncio.sleep(0.4)
        return web.Response(status=200)

    receiver.routes["/slow"] = slow
    agents = [await powner.create_agent(webhookUrl=receiver.url("/slow")) for _ in range(12)]
    messages = await _respond_all(powner, agents, 4)
    await receiver.wait_for("/slow", 6, timeout=30)

    mongo = private.stack.mongo()
    try:
        deliveries = private.db(mongo).deliveries
        victim = private.procs["dispatcher-b"]
        held = await deliveries.count_documents({"state": "pending", "claim": {"$regex": "^dispatcher-b-"}})
        victim.kill()  # SIGKILL: no shutdown, no hand-back; its leases must lapse
        assert not victim.alive

        async def all_delivered() -> bool:
            done = await deliveries.count_documents({"message_id": {"$in": messages}, "state": "delivered"})
            return bool(done == len(messages))

        await eventually(all_delivered, timeout=90, what="every delivery finished by the survivor")
        arrived = Counter(r.headers["webhook-id"] for r in receiver.at("/slow"))
        stored = {d["event_id"] async for d in deliveries.find({"message_id": {"$in": messages}})}
        assert set(arrived) == stored  # nothing lost
        assert len(stored) == len(messages)
        duplicates = sum(arrived.values()) - len(arrived)
        # At least once: only what the victim had claimed when it died can arrive twice.
        assert duplicates <= held, (duplicates, held)
        print(f"SIGKILL: victim held {held} deliveries; {duplicates} duplicate(s) of {len(messages)}")
    finally:
        await mongo.close()
    # The same process restarted joins in again.
    private.start("dispatcher", "dispatcher-b")
