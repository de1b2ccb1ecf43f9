"""The API under infrastructure outages, each with its own broker / database processes."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from sayso_common.events import parse_event
from sayso_devstack.processes import Proc, start_mongod, start_service, start_tansu
from tests.conftest import Infra

pytestmark = pytest.mark.slow

ADMIN = {"email": "outage-admin@tests.local", "password": "outage-admin-password"}


async def _agent_client(api: Proc) -> tuple[httpx.AsyncClient, str]:
    base = f"http://127.0.0.1:{api.port}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as boot:
        token = (await boot.post("/api/v1/auth/login", json=ADMIN)).json()["token"]
        key = await boot.post(
            "/api/v1/api-keys", json={"label": "t"}, headers={"Authorization": f"Bearer {token}"}
        )
    client = httpx.AsyncClient(base_url=base, timeout=30, headers={"x-api-key": key.json()["key"]})
    agent = await client.post("/api/v1/agents", json={"name": "outage"})
    return client, agent.json()["id"]


def _api_env(infra: Infra, mongo_url: str, kafka: str) -> dict[str, str]:
    return infra.service_env(
        SAYSO_MONGO_URL=mongo_url,
        SAYSO_MONGO_DB=f"outage_{secrets.token_hex(4)}",
        SAYSO_KAFKA_BOOTSTRAP=kafka,
        SAYSO_BOOTSTRAP_ADMIN_EMAIL=ADMIN["email"],
        SAYSO_BOOTSTRAP_ADMIN_PASSWORD=ADMIN["password"],
        SAYSO_RELAY_LEASE_SECONDS="2",
    )


@pytest.fixture
async def isolated_kafka(infra: Infra) -> AsyncIterator[tuple[Proc, Proc]]:
    broker = start_tansu(infra.log_dir, name="tansu-outage")
    api = start_service(
        "api",
        infra.log_dir,
        _api_env(infra, infra.mongo_url, f"127.0.0.1:{broker.port}"),
        name="api-kafka-outage",
    )
    yield broker, api
    api.stop()
    broker.stop()


async def test_outbox_survives_a_kafka_outage(infra: Infra, isolated_kafka: tuple[Proc, Proc]) -> None:
    broker, api = isolated_kafka
    client, channel = await _agent_client(api)
    try:
        broker.kill()  # memory-only broker: its topics and records are gone
        ids = []
        for i in range(20):
            resp = await client.post(
                "/api/v1/messages", json={"channelId": channel, "text": f"during outage {i}"}
            )
            assert resp.status_code == 201, resp.text
            ids.append(resp.json()["id"])
        restarted = start_tansu(infra.log_dir, port=broker.port, name="tansu-outage-2")
        try:
            # Generous bound: a producer stuck on the dead broker times out (10 s + 15 s) before reset.
            seen = await _consume_ids(f"127.0.0.1:{restarted.port}", channel, ids, timeout=120)
        finally:
            restarted.stop()
        # All published, in the order written. A batch the restarted broker acknowledged but could
        # not keep is published again, so copies may come first; consumers dedupe on event id.
        assert _in_order(ids, seen), seen
    finally:
        await client.aclose()


def _in_order(ids: list[str], seen: list[str]) -> bool:
    """True when ``ids`` appear in ``seen`` in this order (other entries may sit between them)."""
    rest = iter(seen)
    return all(any(s == i for s in rest) for i in ids)


async def _consume_ids(bootstrap: str, channel: str, ids: list[str], timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline and not _in_order(ids, seen):
        consumer = AIOKafkaConsumer(
            "message.created", bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
        )
        try:
            await consumer.start()
        except Exception:
            await consumer.stop()
            await asyncio.sleep(0.5)
            continue
        try:
            seen = []
            while time.monotonic() < deadline and not _in_order(ids, seen):
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for rec in records:
                        event = parse_event(rec.value)
                        if event.channel_id == channel:
                            seen.append(event.data.message.id)  # type: ignore[union-attr]
                if not batch and not seen:
                    break  # topic may not exist yet: reconnect to pick up new metadata
        finally:
            await consumer.stop()
    return seen


async def test_database_outage_answers_503_then_recovers(infra: Infra, tmp_path: Any) -> None:
    mongo = start_mongod(tmp_path / "db", infra.log_dir, name="mongod-outage")
    url = f"mongodb://127.0.0.1:{mongo.port}/?replicaSet=rs0"
    api = start_service(
        "api", infra.log_dir, _api_env(infra, url, infra.kafka_bootstrap), name="api-mongo-outage"
    )
    client, channel = await _agent_client(api)
    try:
        mongo.stop()
        started = time.monotonic()
        down = await client.post("/api/v1/messages", json={"channelId": channel, "text": "while down"})
        elapsed = time.monotonic() - started
        assert down.status_code == 503, down.text
        assert down.headers["retry-after"] == "2"
        assert down.json()["error"]["code"] == "unavailable"
        print(f"503 answered after {elapsed:.2f}s")
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        restarted = start_mongod(tmp_path / "db", infra.log_dir, port=mongo.port, name="mongod-outage-2")
        try:
            deadline = time.monotonic() + 60
            while True:
                resp = await client.post("/api/v1/messages", json={"channelId": channel, "text": "after"})
                if resp.status_code == 201 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            assert resp.status_code == 201, resp.text
            texts = [
                m["text"]
                for m in (await client.get("/api/v1/messages", params={"channel": channel})).json()["data"]
            ]
            assert texts == ["after"]  # nothing partial from the failed write
        finally:
            restarted.stop()
    finally:
        await client.aclose()
        api.stop()
