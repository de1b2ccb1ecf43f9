"""Fault: MongoDB stops for 10 s under a running API, dispatcher and expirer. Reviews fall due
during the outage and humans answer right after it. Every service rides it out without a
restart, and every expiry and every answer still reaches the agent's webhook."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sayso_devstack.processes import Proc, mongo_url, spawn_service, start_mongod, wait_healthy
from tests.conftest import Infra
from tests.support.receiver import Receiver
from tests.support.stack import admin_headers

pytestmark = pytest.mark.slow

ADMIN = {"email": "outage@tests.local", "password": "outage-password-123"}


@dataclass
class Private:
    mongo: Proc
    data: Path
    services: dict[str, Proc]
    url: str


@pytest.fixture
async def private(infra: Infra, tmp_path: Path) -> AsyncIterator[Private]:
    data = tmp_path / "db"
    mongo = start_mongod(data, infra.log_dir, name="mongod-mo")
    tag = secrets.token_hex(3)
    env = infra.service_env(
        SAYSO_MONGO_URL=mongo_url(mongo.port),
        SAYSO_TOPIC_PREFIX=f"mo{tag}.",
        SAYSO_DISPATCHER_GROUP_ID=f"mo{tag}",
        SAYSO_BOOTSTRAP_ADMIN_EMAIL=ADMIN["email"],
        SAYSO_BOOTSTRAP_ADMIN_PASSWORD=ADMIN["password"],
        SAYSO_RELAY_LEASE_SECONDS="3",
    )
    services = {
        name: spawn_service(name, infra.log_dir, env, name=f"{name}-mo")
        for name in ("api", "dispatcher", "expirer")
    }
    for proc in services.values():
        wait_healthy(proc)
    yield Private(mongo, data, services, f"http://127.0.0.1:{services['api'].port}")
    for proc in services.values():
        proc.stop()
    mongo.stop()


async def test_services_ride_out_a_mongodb_outage(infra: Infra, private: Private, receiver: Receiver) -> None:
    async with httpx.AsyncClient(base_url=private.url, timeout=30) as client:
        human, agent_h = await admin_headers(client, ADMIN)
        agent = (
            await client.post(
                "/api/v1/agents", json={"name": "mo", "webhookUrl": receiver.url("/mo")}, headers=agent_h
            )
        ).json()
        review = {"type": "approval", "payload": {}}
        expiring, answered = [], []
        for i in range(8):
            m = await client.post(
                "/api/v1/messages",
                headers=agent_h,
                json={"channelId": agent["id"], "text": f"e{i}", "review": {**review, "expiresInSeconds": 6}},
            )
            expiring.append(m.json()["id"])
            m = await client.post(
                "/api/v1/messages",
                headers=agent_h,
                json={"channelId": agent["id"], "text": f"a{i}", "review": review},
            )
            answered.append(m.json()["id"])
        private.mongo.stop()
        down = await client.get("/readyz")
        assert down.status_code == 503
        await asyncio.sleep(10)  # the expiring reviews fall due while MongoDB is away
        restarted = start_mongod(private.data, infra.log_dir, port=private.mongo.port, name="mongod-mo-2")
        try:
            for message_id in answered:
                for _ in range(60):  # the API recovers by itself; retry while it still says 503
                    resp = await client.post(
                        f"/api/v1/reviews/{message_id}/respond",
                        headers=human,
                        json={"response": {"selectedOption": "approve"}},
                    )
                    if resp.status_code != 503:
                        break
                    await asyncio.sleep(0.5)
                assert resp.status_code == 200, resp.text
            await receiver.wait_for("/mo", count=16, timeout=90)
            bodies = [r.json() for r in receiver.at("/mo")]
            got = {(b["event"], b["message_id"]) for b in bodies}
            assert got == {("review:expired", m) for m in expiring} | {
                ("review:responded", m) for m in answered
            }
            for name, proc in private.services.items():
                assert proc.alive, f"{name} died during the outage"
        finally:
            restarted.stop()
