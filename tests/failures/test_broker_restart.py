"""Fault: the broker is killed during steady traffic and comes back empty (the local broker is
memory-only: topics, records and consumer-group offsets are gone). The API keeps answering; the
outbox republishes what was written meanwhile, and reconciliation covers anything the consumer
group never saw. Every answer reaches the agent's webhook; duplicates are counted."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from sayso_devstack.processes import Proc, spawn_service, start_tansu, wait_healthy
from tests.conftest import Infra
from tests.support.receiver import Receiver
from tests.support.stack import admin_headers

pytestmark = pytest.mark.slow

ADMIN = {"email": "broker@tests.local", "password": "broker-password-123"}
ANSWERS = 45


@dataclass
class Private:
    kafka: Proc
    api: Proc
    dispatcher: Proc


@pytest.fixture
async def private(infra: Infra) -> AsyncIterator[Private]:
    kafka = start_tansu(infra.log_dir, name="tansu-br")
    env = infra.service_env(
        SAYSO_KAFKA_BOOTSTRAP=f"127.0.0.1:{kafka.port}",
        SAYSO_MONGO_DB=f"broker_{secrets.token_hex(3)}",
        SAYSO_BOOTSTRAP_ADMIN_EMAIL=ADMIN["email"],
        SAYSO_BOOTSTRAP_ADMIN_PASSWORD=ADMIN["password"],
        SAYSO_DISPATCHER_RECONCILE_INTERVAL_SECONDS="2",
        SAYSO_DISPATCHER_RECONCILE_GRACE_SECONDS="5",
    )
    api = spawn_service("api", infra.log_dir, env, name="api-br")
    dispatcher = spawn_service("dispatcher", infra.log_dir, env, name="dispatcher-br")
    wait_healthy(api)
    wait_healthy(dispatcher)
    holder = Private(kafka, api, dispatcher)
    yield holder
    api.stop()
    holder.dispatcher.stop()
    holder.kafka.stop()


async def test_every_answer_delivered_across_a_broker_restart(
    infra: Infra, private: Private, receiver: Receiver
) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{private.api.port}", timeout=30) as client:
        human, agent_h = await admin_headers(client, ADMIN)
        agent = (
            await client.post(
                "/api/v1/agents", json={"name": "br", "webhookUrl": receiver.url("/br")}, headers=agent_h
            )
        ).json()
        answered: list[str] = []
        for i in range(ANSWERS):
            if i == 15:
                private.kafka.kill()
            if i == 30:
                private.kafka = start_tansu(infra.log_dir, port=private.kafka.port, name="tansu-br-2")
            msg = await client.post(
                "/api/v1/messages",
                headers=agent_h,
                json={
                    "channelId": agent["id"],
                    "text": f"n{i}",
                    "review": {"type": "approval", "payload": {}},
                },
            )
            assert msg.status_code == 201, msg.text  # the API never depends on the broker
            resp = await client.post(
                f"/api/v1/reviews/{msg.json()['id']}/respond",
                headers=human,
                json={"response": {"selectedOption": "approve"}},
            )
            assert resp.status_code == 200, resp.text
            answered.append(msg.json()["id"])
            await asyncio.sleep(0.1)
    await receiver.wait_for("/br", count=ANSWERS, timeout=120)
    got = Counter(
        r.json()["message_id"] for r in receiver.at("/br") if r.json()["event"] == "review:responded"
    )
    assert set(got) == set(answered)  # every answer delivered
    duplicates = sum(n - 1 for n in got.values())
    print(f"{ANSWERS} answers delivered across a broker restart; {duplicates} delivered twice")
    # A repeated delivery carries the same webhook-id, so receivers can drop it.
    by_message: dict[str, set[str]] = {}
    for r in receiver.at("/br"):
        by_message.setdefault(r.json()["message_id"], set()).add(r.headers["webhook-id"])
    assert all(len(ids) == 1 for ids in by_message.values()), by_message
    assert private.dispatcher.alive
