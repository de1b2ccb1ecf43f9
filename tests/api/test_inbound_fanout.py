"""A message posted through an inbound token webhook or a signed trigger is a real channel
message: it reaches Socket.IO clients (through the edge) and the agent's own webhook."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from tests.realtime.clients import Received, socket_client
from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack


async def test_inbound_messages_reach_sockets_and_agent_webhook(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    agent = await owner.create_agent(
        name="inbound-fanout", webhookUrl=receiver.url("/agent"), webhookEvents=["message:created"]
    )
    secret = agent["webhookSecret"]
    hook = (
        await owner.agent.post(f"/api/v1/agents/{agent['id']}/inbound-webhooks", json={"name": "CI"})
    ).json()
    trig = (
        await owner.agent.post(
            f"/api/v1/agents/{agent['id']}/triggers", json={"name": "alerts", "mapping": {"text": "/title"}}
        )
    ).json()
    async with socket_client(stack.url, {"token": owner.token, "channels": [agent["id"]]}) as (_, inbox):
        async with httpx.AsyncClient(base_url=stack.url, timeout=30) as anon:
            ok = await anon.post(
                f"/api/webhooks/execute/{hook['token']}",
                json={"content": "build #7 passed", "username": "CI"},
            )
            assert ok.status_code == 200
            body = json.dumps({"title": "disk almost full"})
            now = datetime.now(UTC)
            headers = {
                "webhook-id": "alert-1",
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": Webhook(trig["secret"]).sign("alert-1", now, body),
                "content-type": "application/json",
            }
            fired = await anon.post(f"/api/triggers/{trig['id']}", content=body, headers=headers)
            assert fired.status_code == 202, fired.text
        for text in ("build #7 passed", "disk almost full"):

            def is_it(r: Received, t: str = text) -> bool:
                return r.name == "message:created" and r.payload.get("text") == t

            got = await inbox.wait_for(is_it, what=text)
            assert got.payload["senderType"] == "webhook"
    delivered = await receiver.wait_for("/agent", count=2, timeout=30)
    texts = set()
    for request in delivered:
        payload = Webhook(secret).verify(request.body, request.headers)  # signed by Sayso
        assert payload["event"] == "message:created"
        texts.add(payload["message"]["text"])
    assert texts == {"build #7 passed", "disk almost full"}
