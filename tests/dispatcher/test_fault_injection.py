"""Fault injection: an exception raised at any step of an attempt — reading the agent, signing,
sending, after the receiver answered, recording the outcome — leaves no lease, circuit probe or
delivery stuck; the delivery is retried and ends delivered. A real Worker on real MongoDB and a
real receiver; only the collaborators are subclassed to raise once at their step, and passed in
(the worker's breakers too, which the test opens first and reads at the end)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from sayso_common.clock import utcnow
from sayso_common.deliveries import Attempt, new_delivery
from sayso_common.documents import AgentDoc, DeliveryDoc
from sayso_common.mongo import AGENTS, DELIVERIES, Database, Doc, collection, ensure_indexes
from sayso_common.secretbox import SecretBox
from sayso_common.webhook_signature import new_secret
from sayso_dispatcher.agents import AgentDirectory
from sayso_dispatcher.circuit import Breakers, State
from sayso_dispatcher.sender import Sender
from sayso_dispatcher.settings import DispatcherSettings
from sayso_dispatcher.store import DeliveryStore
from sayso_dispatcher.worker import Worker, lane_key
from tests.conftest import Infra
from tests.support.receiver import Receiver

KEY = "fault-injection-key-" + "k" * 20
STEPS = ("agent", "sign", "send", "after_send", "record")


class Fault:
    def __init__(self, step: str) -> None:
        self.step = step
        self.fired = False

    def at(self, step: str) -> None:
        if step == self.step and not self.fired:
            self.fired = True
            raise RuntimeError(f"injected fault at {step}")


class FaultyAgents(AgentDirectory):
    def __init__(self, db: Database, box: SecretBox, fault: Fault) -> None:
        super().__init__(db, box)
        self.fault = fault

    async def get(self, agent_id: str) -> AgentDoc | None:
        self.fault.at("agent")
        return await super().get(agent_id)

    def secrets(self, agent: AgentDoc | None, now: datetime) -> list[str]:
        self.fault.at("sign")
        return super().secrets(agent, now)


class FaultySender(Sender):
    fault: Fault

    async def post(self, url: str, method: str, body: bytes, headers: dict[str, str]) -> Attempt:
        self.fault.at("send")
        attempt = await super().post(url, method, body, headers)
        self.fault.at("after_send")
        return attempt


class FaultyStore(DeliveryStore):
    fault: Fault

    async def record(self, doc: DeliveryDoc, update: Doc, attempt_at: datetime, by: str) -> bool:
        self.fault.at("record")
        return await super().record(doc, update, attempt_at, by)


@pytest.mark.parametrize("step", STEPS)
async def test_a_fault_at_any_step_leaves_nothing_stuck(infra: Infra, receiver: Receiver, step: str) -> None:
    settings = DispatcherSettings(
        secret_key=KEY,
        mongo_url=infra.mongo_url,
        dispatcher_allowed_networks=["127.0.0.0/8"],
        dispatcher_timeout_seconds=1,
        dispatcher_lease_seconds=2,
        # One failure opens the circuit; after 0.3 s one probe may go: a probe left dangling by
        # an unrecorded or uncounted attempt would refuse this endpoint for good.
        dispatcher_circuit_min_calls=1,
        dispatcher_circuit_failure_ratio=1.0,
        dispatcher_circuit_open_seconds=0.3,
    )
    client: AsyncMongoClient[Doc] = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    db = client[f"faults_{step}"]
    await ensure_indexes(db)
    box = SecretBox(KEY)
    fault = Fault(step)
    agents = FaultyAgents(db, box, fault)
    sender = FaultySender(settings, "faulty")
    sender.fault = fault
    store = FaultyStore(db, "faulty", settings.lease_seconds)
    store.fault = fault
    breakers = Breakers(settings.circuit_policy())
    worker = Worker.create(settings, db, agents, sender, "faulty", store=store, breakers=breakers)
    now = utcnow()
    await db[AGENTS].insert_one(
        {"_id": "agt_f", "owner_id": "usr_f", "webhook_url": receiver.url(f"/{step}"),
         "signing_secrets": [{"secret_enc": box.seal(new_secret()), "created_at": now, "expires_at": None}]}
    )  # fmt: skip
    doc = new_delivery(
        event_id=f"evt_{step}", event_type="review.responded", channel_id="agt_f", owner_id="usr_f",
        message_id=None, url=receiver.url(f"/{step}"), source="agent", body='{"event":"review:responded"}',
        schedule=[1], now=now, due_at=now, claim=None,
    )  # fmt: skip
    await collection(db, DELIVERIES).insert_one(doc)
    # The circuit starts open, so the first attempt that goes is its half-open probe. A fault
    # before the answer is our own error, which the breaker does not count (sayso_common.attempts):
    # the probe must still be given back.
    breakers[lane_key(doc)].record(False)
    try:
        deadline = time.monotonic() + 30
        final: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            await worker.sweep_once()
            await asyncio.sleep(0.2)
            final = await db[DELIVERIES].find_one({"_id": doc["_id"]})
            if final and final["state"] == "delivered":
                break
        assert fault.fired
        assert final is not None
        assert final["state"] == "delivered", final
        if step != "record":  # an unrecorded outcome is found again when its lease lapses
            assert final["attempt_count"] == 2, final["attempts"]
            assert final["attempts"][0]["error_kind"] == "internal_error"
        circuit = breakers[lane_key(doc)]
        assert circuit.state is State.CLOSED
        assert not circuit.probing
        assert receiver.at(f"/{step}")
    finally:
        await worker.close(grace=1)
        await sender.close()
        await client.drop_database(f"faults_{step}")
        await client.close()
