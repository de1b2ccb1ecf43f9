"""Measure one realtime process holding many long-poll waiters (run by hand, not collected):

    uv run python -m tests.realtime.measure_waiters 10000

Starts mongod, Tansu and one realtime process on free ports, parks N long-polls on pending
reviews (aiohttp client, one connection each), reports the process's RSS growth per waiter, then
publishes one ``review.responded`` per review straight to Kafka and reports how long it took
until every poll had answered ``completed``.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import aiohttp
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from sayso_common.clock import utcnow
from sayso_common.credentials import generate_api_key, hash_secret
from sayso_common.documents import MessageDoc
from sayso_common.events import MessageData, ReviewResponded, event_to_json
from sayso_common.ids import new_id
from sayso_common.views import message_view
from sayso_devstack.processes import Proc, mongo_url, start_mongod, start_service, start_tansu, wait_ready


def rss_mb(proc: Proc) -> float:
    for line in Path(f"/proc/{proc.popen.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def measure(n: int, base: Path) -> None:
    logs = base / "logs"
    mongo = start_mongod(base / "mongo", logs)
    kafka = start_tansu(logs)
    env = {
        "SAYSO_MONGO_URL": mongo_url(mongo.port),
        "SAYSO_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka.port}",
        "SAYSO_SECRET_KEY": secrets.token_urlsafe(40),
        "SAYSO_LOG_LEVEL": "WARNING",
    }
    realtime = start_service("realtime", logs, env)
    try:
        wait_ready(realtime)
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url(mongo.port), tz_aware=True)
        db = client.sayso
        key = generate_api_key()
        await db.api_keys.insert_one(
            {"_id": new_id("key"), "key_hash": hash_secret(key), "owner_id": "usr_m"}
        )
        now = utcnow()
        docs: list[dict[str, Any]] = [
            {
                "_id": new_id("msg"),
                "channel_id": "agt_m",
                "owner_id": "usr_m",
                "text": "measure",
                "created_at": now,
                "review": {
                    "type": "approval",
                    "payload": {},
                    "status": "pending",
                    "expires_at": now.replace(year=now.year + 1),
                },
            }
            for _ in range(n)
        ]
        await db.messages.insert_many(docs)
        base_url = f"http://127.0.0.1:{realtime.port}"
        before = rss_mb(realtime)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(
            connector=connector, headers={"x-api-key": key}, timeout=aiohttp.ClientTimeout(total=120)
        ) as http:

            async def poll(doc_id: object) -> tuple[str, float]:
                async with http.get(f"{base_url}/api/v1/reviews/{doc_id}/wait?timeout=30000") as resp:
                    body = await resp.json()
                    return body["status"], time.perf_counter()

            polls = [asyncio.create_task(poll(d["_id"])) for d in docs]
            async with aiohttp.ClientSession() as probe:
                while True:
                    text = await (await probe.get(f"{base_url}/metrics")).text()
                    line = next(x for x in text.splitlines() if x.startswith("sayso_realtime_waiters "))
                    if float(line.split()[1]) >= n:
                        break
                    await asyncio.sleep(0.2)
            held = rss_mb(realtime)
            print(
                f"{n} waiters parked: RSS {before:.0f} MB -> {held:.0f} MB, {(held - before) * 1024 / n:.1f} KB per waiter"
            )
            producer = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{kafka.port}", acks="all")
            await producer.start()
            started = time.perf_counter()
            try:
                for d in docs:
                    answered = {
                        **d,
                        "review": {
                            **d["review"],
                            "status": "completed",
                            "response": {"selectedOption": "approve"},
                        },
                    }
                    event = ReviewResponded(
                        channel_id="agt_m",
                        owner_id="usr_m",
                        data=MessageData(message=message_view(cast(MessageDoc, answered))),
                    )
                    await producer.send("review.responded", event_to_json(event), key=b"agt_m")
                await producer.flush()
                published = time.perf_counter()
            finally:
                await producer.stop()
            results = await asyncio.gather(*polls)
        statuses = {s for s, _ in results}
        last = max(t for _, t in results)
        print(
            f"published {n} responses in {published - started:.2f} s; all polls answered {statuses} "
            f"{last - started:.2f} s after the first publish"
        )
        await client.close()
    finally:
        realtime.stop()
        kafka.stop()
        mongo.stop()


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(measure(count, Path(tmp)))
