"""One tenant must never stall another's deliveries (issue #14 findings 1, 2 and 7; issue #25
finding 7), against the real stack: a receiver host shared by both tenants, and one tenant's many
slow hosts beside another's healthy one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from sayso_common.secretbox import SecretBox
from tests.conftest import Infra
from tests.dispatcher.flows import answered
from tests.support.private import PrivateStack, private_stack
from tests.support.receiver import Received, Receiver
from tests.support.stack import Owner, RunningStack, eventually

APPROVAL = {"type": "approval", "payload": {}}


async def _fail(_: web.Request, __: Received) -> web.StreamResponse:
    return web.json_response({"error": "down"}, status=500)


async def test_one_tenants_failures_do_not_open_anothers_circuit(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    receiver.routes["/fail"] = _fail
    other = await stack.new_owner()
    try:
        noisy = await owner.create_agent(webhookUrl=receiver.url("/fail"), webhookRetrySchedule=[600])
        victim = await other.create_agent(webhookUrl=receiver.url("/victim"))
        for _ in range(25):  # past the breaker's minimum calls, every one failing
            msg = await owner.post_message(noisy["id"], review=APPROVAL)
            await owner.respond(msg["id"], {"selectedOption": "approve"})
        await receiver.wait_for("/fail", count=10)  # the breaker opens after 10 failures of 10
        # The same host:port, another tenant: delivered now, not after the noisy tenant's circuit.
        probe = await other.agent.post(f"/api/v1/agents/{victim['id']}/webhook/test")
        assert probe.status_code == 200, probe.text
        assert probe.json()["delivered"] is True
        msg = await other.post_message(victim["id"], review=APPROVAL)
        await other.respond(msg["id"], {"selectedOption": "approve"})
        hooks = await receiver.wait_for("/victim", count=2)
        assert hooks[-1].json()["message_id"] == msg["id"]
    finally:
        await other.aclose()


async def _seal_headers(stack: RunningStack, agent_id: str, headers: dict[str, str]) -> None:
    """Headers stored before the API refused them (the API's check is the first fence)."""
    sealed = SecretBox(stack.env["SAYSO_SECRET_KEY"]).seal(json.dumps(headers))
    async with stack.mongo() as client:
        await client.sayso.agents.update_one(
            {"_id": agent_id},
            {"$set": {"webhook_headers_enc": sealed, "webhook_header_names": sorted(headers)}},
        )


async def _delivery(stack: RunningStack, message_id: str) -> dict[str, Any] | None:
    async with stack.mongo() as client:
        doc: dict[str, Any] | None = await client.sayso.deliveries.find_one(
            {"message_id": message_id, "state": {"$ne": "pending"}}
        )
        return doc


async def test_a_header_aiohttp_refuses_is_a_failed_attempt_not_a_stuck_delivery(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    poisoned = await owner.create_agent(webhookUrl=receiver.url("/poison"), webhookRetrySchedule=[600])
    await _seal_headers(stack, poisoned["id"], {"X-Tenant": "a\x01b"})
    msg = await owner.post_message(poisoned["id"], review=APPROVAL)
    await owner.respond(msg["id"], {"selectedOption": "approve"})
    done = await eventually(
        lambda: _delivery(stack, msg["id"]), timeout=20, what="poisoned delivery recorded"
    )
    assert done["state"] == "failed"
    assert done["attempt_count"] == 1
    assert done["attempts"][-1]["error_kind"] == "invalid_request"
    assert done.get("claim") is None
    # The same host still takes this tenant's other deliveries: no probe was left dangling.
    healthy = await owner.create_agent(webhookUrl=receiver.url("/after"))
    after = await owner.post_message(healthy["id"], review=APPROVAL)
    await owner.respond(after["id"], {"selectedOption": "approve"})
    await receiver.wait_for("/after")
    assert receiver.at("/poison") == []


async def test_framing_headers_stored_earlier_are_never_sent(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    agent = await owner.create_agent(webhookUrl=receiver.url("/framing"))
    await _seal_headers(
        stack,
        agent["id"],
        {"Transfer-Encoding": "chunked", "Connection": "close", "webhook-id": "forged", "X-Ok": "1"},
    )
    msg = await owner.post_message(agent["id"], review=APPROVAL)
    await owner.respond(msg["id"], {"selectedOption": "approve"})
    (hook,) = await receiver.wait_for("/framing")
    assert hook.headers["x-ok"] == "1"
    assert "transfer-encoding" not in hook.headers
    assert hook.headers["webhook-id"] != "forged"
    assert int(hook.headers["content-length"]) == len(hook.body)


# A dispatcher with few slots, so one tenant can fill them with a handful of hanging requests: a
# quarter of them (the default tenant share) is 2 per tenant.
SLOTS = 8
TENANT_SLOTS = 2


@pytest.fixture(scope="module")
def small_dispatcher(infra: Infra) -> Iterator[PrivateStack]:
    with private_stack(
        PrivateStack,
        infra,
        "tenantslots",
        {"dispatcher": "dispatcher"},
        ready=("dispatcher",),
        SAYSO_DISPATCHER_CONCURRENCY=str(SLOTS),
        # The slow receivers answer when the test lets them, never cut short by the dispatcher.
        SAYSO_DISPATCHER_TIMEOUT_SECONDS="120",
        SAYSO_DISPATCHER_LEASE_SECONDS="150",
    ) as private:
        yield private


@dataclass
class Held:
    """Requests held open by the slow receivers until ``gate`` opens: how many hang right now,
    the most at once, and how many were answered."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    hanging: int = 0
    peak: int = 0
    answered: int = 0

    async def handler(self, _: web.Request, __: Received) -> web.StreamResponse:
        self.hanging += 1
        self.peak = max(self.peak, self.hanging)
        try:
            await self.gate.wait()
        finally:
            self.hanging -= 1
        self.answered += 1
        return web.json_response({"ok": True})


@pytest.fixture
async def slow_hosts() -> AsyncIterator[list[Receiver]]:
    receivers = [await Receiver().start() for _ in range(3)]  # three ports: three hosts
    yield receivers
    for rec in receivers:
        await rec.stop()


@pytest.mark.slow
async def test_a_tenant_with_many_slow_hosts_holds_only_its_share_of_the_slots(
    small_dispatcher: PrivateStack, slow_hosts: list[Receiver], receiver: Receiver
) -> None:
    noisy, victim = await small_dispatcher.stack.new_owner(), await small_dispatcher.stack.new_owner()
    held = Held()
    try:
        agents = []
        for rec in slow_hosts:
            rec.routes["/slow"] = held.handler
            agents.append(await noisy.create_agent(webhookUrl=rec.url("/slow")))
        # Twelve deliveries on three hosts: enough, one tenant-blind pool of eight slots, to take
        # them all (each host may run sixteen).
        for _ in range(4):
            for agent in agents:
                await answered(noisy, agent["id"])
        await eventually(
            lambda: _true(held.hanging >= TENANT_SLOTS), timeout=20, what="the slow hosts reached"
        )
        healthy = await victim.create_agent(webhookUrl=receiver.url("/victim"))
        msg = await answered(victim, healthy["id"])
        (hook,) = await receiver.wait_for("/victim", timeout=30)
        # Arrived while every slow request still hung, none of them answered: it did not wait
        # for the noisy tenant's slots, and that tenant held only its share of them.
        assert hook.json()["message_id"] == msg["id"]
        assert held.answered == 0
        assert held.hanging == TENANT_SLOTS
        assert sum(len(rec.requests) for rec in slow_hosts) == TENANT_SLOTS
        held.gate.set()
        await eventually(lambda: _true(held.answered == 12), timeout=60, what="every slow delivery")
        assert held.peak == TENANT_SLOTS
    finally:
        held.gate.set()
        for owner in (noisy, victim):
            await owner.aclose()


async def _true(value: bool) -> bool:
    return value
