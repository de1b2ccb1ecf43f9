"""One tenant must never stall another's deliveries (issue #14 findings 1, 2 and 7), against the
real stack and a receiver host shared by both tenants."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from signoff_common.secretbox import SecretBox
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
        await other.agent.aclose()
        await other.human.aclose()


async def _seal_headers(stack: RunningStack, agent_id: str, headers: dict[str, str]) -> None:
    """Headers stored before the API refused them (the API's check is the first fence)."""
    sealed = SecretBox(stack.env["SIGNOFF_SECRET_KEY"]).seal(json.dumps(headers))
    async with stack.mongo() as client:
        await client.signoff.agents.update_one(
            {"_id": agent_id},
            {"$set": {"webhook_headers_enc": sealed, "webhook_header_names": sorted(headers)}},
        )


async def _delivery(stack: RunningStack, message_id: str) -> dict[str, Any] | None:
    async with stack.mongo() as client:
        doc: dict[str, Any] | None = await client.signoff.deliveries.find_one(
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
