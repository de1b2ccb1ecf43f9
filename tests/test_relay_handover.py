"""The outbox relay's lease across API replicas: exactly one publishes; a clean stop hands the
lease back at once (the next replica publishes long before the lease would have lapsed), and a
killed holder is replaced once its lease lapses. Two real API processes on the session's
MongoDB and broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from sayso_devstack.processes import Proc, start_service, wait_ready
from tests.conftest import Infra
from tests.support.stack import admin_headers

DB = "relay_handover"
ADMIN = {"email": "admin@handover.test", "password": "admin-password-handover"}
LEASE = "outbox-relay:api"


def _env(infra: Infra) -> dict[str, str]:
    return infra.service_env(
        SAYSO_MONGO_DB=DB,
        SAYSO_BOOTSTRAP_ADMIN_EMAIL=ADMIN["email"],
        SAYSO_BOOTSTRAP_ADMIN_PASSWORD=ADMIN["password"],
        SAYSO_TOPIC_PREFIX="handover.",
        # Long enough that a takeover within it can only come from the lease being handed back.
        SAYSO_RELAY_LEASE_SECONDS="60",
    )


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.stop()


async def _holder(db: Any) -> str | None:
    doc = await db.leases.find_one({"_id": LEASE})
    return None if doc is None else str(doc["holder"])


async def _published(db: Any, message_id: str, within: float) -> bool:
    """Whether the message's outbox empties (the relay published its event) within ``within`` s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        doc = await db.messages.find_one({"_id": message_id}, {"outbox": 1})
        if doc is not None and not doc.get("outbox"):
            return True
        await asyncio.sleep(0.2)
    return False


async def test_a_clean_stop_hands_the_relay_to_the_other_replica(infra: Infra, procs: list[Proc]) -> None:
    client_db: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    db = client_db[DB]
    try:
        # The first replica alone: it takes the lease and publishes.
        first = start_service("api", infra.log_dir, _env(infra), name="api-handover-1")
        procs.append(first)
        wait_ready(first)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{first.port}", timeout=30) as client:
            _, agent = await admin_headers(client, ADMIN)
            made = await client.post("/api/v1/agents", headers=agent, json={"name": "handover"})
            channel = made.json()["id"]
            sent = await client.post(
                "/api/v1/messages", headers=agent, json={"channelId": channel, "text": "one"}
            )
            assert await _published(db, sent.json()["id"], 30)
        holder = await _holder(db)
        assert holder is not None
        second = start_service("api", infra.log_dir, _env(infra), name="api-handover-2")
        procs.append(second)
        wait_ready(second)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{second.port}", timeout=30) as client:
            _, agent = await admin_headers(client, ADMIN)
            sent = await client.post(
                "/api/v1/messages", headers=agent, json={"channelId": channel, "text": "two"}
            )
            assert sent.status_code == 201, sent.text
            # The first still holds the lease and publishes what the second wrote.
            assert await _published(db, sent.json()["id"], 30)
            assert await _holder(db) == holder
            first.stop()  # SIGTERM: a clean stop hands the lease back
            procs.remove(first)
            sent = await client.post(
                "/api/v1/messages", headers=agent, json={"channelId": channel, "text": "three"}
            )
            assert sent.status_code == 201, sent.text
            # Well inside the 60 s lease: only a handed-back lease lets the second publish now.
            assert await _published(db, sent.json()["id"], 20)
        assert await _holder(db) not in (None, holder)
    finally:
        await client_db.close()
