"""The relay's change stream wakes it for writes that carry outbox entries, and only for those.

Against the real mongod: claims, renewals and the relay's own pulls (which leave ``outbox: []``)
must not wake a drain; every way an event can be added must."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo import AsyncMongoClient

from sayso_common.mongo import CARRIES_OUTBOX, Doc
from tests.conftest import Infra


async def test_change_stream_filter_matches_outbox_writes_only(infra: Infra) -> None:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(infra.mongo_url)
    db = client[f"wake_{secrets.token_hex(4)}"]
    x = db.x
    seen: list[str] = []
    pipeline: list[dict[str, Any]] = [
        {"$match": {"ns.coll": {"$in": ["x"]}, "$or": CARRIES_OUTBOX}},
        {"$project": {"operationType": 1}},
    ]
    opened = asyncio.Event()

    async def watch() -> None:
        async with await db.watch(pipeline) as stream:
            opened.set()
            async for change in stream:
                seen.append(change["operationType"])

    steps: list[tuple[str, Callable[[], Awaitable[Any]], int]] = [
        ("insert with an event", lambda: x.insert_one({"_id": 1, "outbox": [{"id": "a"}]}), 1),
        ("insert without", lambda: x.insert_one({"_id": 2}), 0),
        ("push onto a non-empty outbox", lambda: x.update_one({"_id": 1}, {"$push": {"outbox": {"id": "b"}}}), 1),
        ("pull leaving one", lambda: x.update_one({"_id": 1}, {"$pull": {"outbox": {"id": "a"}}}), 1),
        ("pull to empty", lambda: x.update_one({"_id": 1}, {"$pull": {"outbox": {"id": "b"}}}), 0),
        ("push onto an empty outbox", lambda: x.update_one({"_id": 1}, {"$push": {"outbox": {"id": "c"}}}), 1),
        ("push onto a missing outbox", lambda: x.update_one({"_id": 2}, {"$push": {"outbox": {"id": "d"}}}), 1),
        ("claim (other fields only)", lambda: x.update_one({"_id": 2}, {"$set": {"claim": "z"}}), 0),
        ("state change with an event", lambda: x.update_one({"_id": 2}, {"$set": {"s": 1}, "$push": {"outbox": {"id": "e"}}}), 1),
        ("replace with an event", lambda: x.replace_one({"_id": 2}, {"outbox": [{"id": "f"}]}), 1),
        ("pulls to empty on many", lambda: x.update_many({}, {"$pull": {"outbox": {"id": {"$in": ["c", "f"]}}}}), 0),
        ("marker: insert with an event", lambda: x.insert_one({"_id": 3, "outbox": [{"id": "g"}]}), 1),
    ]  # fmt: skip
    task = asyncio.create_task(watch())
    try:
        await asyncio.wait_for(opened.wait(), 30)
        expected = 0
        for name, write, wakes in steps:
            await write()
            expected += wakes
            # A change stream delivers in order: once the count reaches what the wakes so far add
            # up to (and the next matching write arrives after), nothing extra slipped in between.
            for _ in range(300):
                if len(seen) >= expected:
                    break
                await asyncio.sleep(0.01)
            assert len(seen) == expected, f"after {name!r}: {len(seen)} wakes, expected {expected}"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.drop_database(db.name)
        await client.close()
