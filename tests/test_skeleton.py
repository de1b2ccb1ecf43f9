"""The walking skeleton: one request through every service on real servers."""

from __future__ import annotations

import asyncio

import httpx
from aiokafka import AIOKafkaConsumer

from sayso_common.events import parse_event
from tests.support.stack import Owner, RunningStack, eventually


async def test_every_service_is_healthy_and_ready(stack: RunningStack) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for name in ("api", "realtime", "dispatcher", "expirer", "notifier"):
            base = f"http://127.0.0.1:{stack.procs[name].port}"
            health = (await client.get(f"{base}/healthz")).json()
            assert health["status"] == "ok"
            if name == "api":  # the outbox backlog, read from MongoDB
                assert set(health["outbox"]) == {"documents", "oldestAgeSeconds", "deadLetters"}
            else:
                assert health == {"status": "ok"}
            ready = await client.get(f"{base}/readyz")
            assert ready.status_code == 200, (name, ready.text)
            assert ready.json()["checks"]["mongodb"].startswith("ok")
            metrics = await client.get(f"{base}/metrics")
            assert "python_info" in metrics.text
        edge = await client.get(f"{stack.url}/healthz")
        assert edge.status_code == 200
        # Metrics are scraped per service, never served on the public origin.
        hidden = await client.get(f"{stack.url}/metrics")
        assert hidden.status_code == 404
        assert "python_info" not in hidden.text


async def test_api_docs_load_nothing_from_another_origin(stack: RunningStack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert "script-src 'self';" in page.headers["content-security-policy"]
        assert "http" not in page.text  # every asset is a same-origin path
        assert "<script>" not in page.text  # no inline script
        for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/docs/init.js"):
            got = await client.get(asset)
            assert got.status_code == 200, asset
            assert len(got.content) > 50, asset
        assert (await client.get("/openapi.json")).json()["info"]["title"] == "Sayso API"


async def test_message_created_reaches_kafka_and_events_collection(stack: RunningStack, owner: Owner) -> None:
    consumer = AIOKafkaConsumer(
        "message.created", bootstrap_servers=stack.kafka_bootstrap, auto_offset_reset="latest"
    )
    await consumer.start()
    try:
        # Make sure the consumer holds its partitions before producing.
        await consumer.seek_to_end()
        agent = await owner.create_agent(name="skeleton")
        msg = await owner.post_message(agent["id"], text="walking skeleton")
        seen = None
        async with asyncio.timeout(20):
            while seen is None:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for rec in records:
                        event = parse_event(rec.value)
                        if event.channel_id == agent["id"]:
                            seen = (rec.key, event)
        key, event = seen
        assert key == agent["id"].encode()
        assert event.type == "message.created"
        assert event.data.message.id == msg["id"]
    finally:
        await consumer.stop()
    mongo = stack.mongo()
    try:
        stored = await eventually(
            lambda: mongo.sayso.events.find_one({"channel_id": agent["id"]}), what="event stored for resume"
        )
        assert stored["type"] == "message.created"
        doc = await mongo.sayso.messages.find_one({"_id": msg["id"]})
        assert doc is not None
        assert doc.get("outbox") == []
    finally:
        await mongo.close()
