"""Retention (SAYSO_RETENTION_DAYS): finished deliveries and notifications, and stored events, are
removed by TTL indexes; pending work never is.

On the stack: the indexes exist with the default (30 days) and events are stored to expire with
it. On a mongod of this test's own, whose TTL monitor runs every second: documents put in their
states by the real update functions (an attempt recorded delivered, failed, retrying; a failed
delivery re-queued) go, or stay, as the rules say."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from sayso_common import retention
from sayso_common.deliveries import Attempt, new_delivery, record_attempt, requeue
from sayso_common.mongo import DELIVERIES, INCIDENTS, NOTIFICATIONS, Database
from sayso_devstack.processes import mongo_url, start_mongod
from tests.conftest import Infra
from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack, eventually

DAYS_30 = 30 * 24 * 3600


async def indexes(db: Database, name: str) -> dict[str, Any]:
    return {ix["name"]: ix async for ix in await db[name].list_indexes()}


async def test_the_stack_has_the_retention_indexes(stack: RunningStack) -> None:
    mongo = stack.mongo()
    try:
        db = mongo[stack.mongo_db]
        deliveries = (await indexes(db, DELIVERIES))[retention.DELIVERIES_INDEX]
        assert dict(deliveries["key"]) == {"updated_at": 1}
        assert deliveries["expireAfterSeconds"] == DAYS_30
        assert deliveries["partialFilterExpression"] == {"state": {"$in": ["delivered", "failed"]}}
        notices = (await indexes(db, NOTIFICATIONS))[retention.NOTIFICATIONS_INDEX]
        assert notices["expireAfterSeconds"] == DAYS_30
        assert notices["partialFilterExpression"] == {
            "state": {"$in": ["sent", "failed", "cancelled", "skipped"]}
        }
        incidents = (await indexes(db, INCIDENTS))[retention.INCIDENTS_INDEX]
        assert incidents["expireAfterSeconds"] == DAYS_30
        assert incidents["partialFilterExpression"] == {"state": "resolved"}
    finally:
        await mongo.close()


async def test_events_are_stored_for_the_retention(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    """Both relays store for the retention: the API's (message.created) and the dispatcher's
    (delivery.status)."""
    channel = (await owner.create_agent(webhookUrl=receiver.url("/hook")))["id"]
    msg = await owner.post_message(channel, review={"type": "approval"})
    assert (await owner.respond(msg["id"], {"selectedOption": "approve"})).status_code == 200
    mongo = stack.mongo()
    try:
        events = mongo[stack.mongo_db].events

        async def stored(query: dict[str, Any]) -> dict[str, Any] | None:
            return await events.find_one(query)

        created = await eventually(
            lambda: stored({"data.message.id": msg["id"]}), what="message.created stored"
        )
        status = await eventually(
            lambda: stored({"type": "delivery.status", "data.message_id": msg["id"]}),
            what="delivery.status stored",
        )
        for event in (created, status):
            # Stored with 30 days to live (the old constant was 24 hours): more than 29 from now.
            assert timedelta(days=29) < event["expire_at"] - datetime.now(UTC) <= timedelta(days=30)
    finally:
        await mongo.close()


# --- the TTL monitor at work, on a mongod of this test's own -----------------------------------


@pytest.fixture
async def own_db(infra: Infra, tmp_path: Path) -> AsyncIterator[Database]:
    # Its own mongod, so its TTL monitor may run every second (60 s by default); set from
    # start-up: set later, it takes effect only after the monitor's first 60 s sleep.
    mongo = start_mongod(
        tmp_path / "db", infra.log_dir, name="mongod-ttl", parameters=["ttlMonitorSleepSecs=1"]
    )
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url(mongo.port), tz_aware=True)
    try:
        yield client["retention"]
    finally:
        await client.close()
        mongo.stop()


def delivery(now: datetime, name: str) -> dict[str, Any]:
    doc = new_delivery(
        event_id=f"evt_{name}",
        event_type="review.responded",
        channel_id="agt_1",
        owner_id="usr_1",
        message_id="msg_1",
        url=f"https://receiver.example/{name}",
        source="agent",
        body="{}",
        schedule=[5, 300],
        now=now,
        due_at=now,
        claim="c1",
    )
    doc["_id"] = name
    return dict(doc)


async def attempted(db: Database, name: str, at: datetime, result: Any, delay: float | None = None) -> None:
    doc: Any = await db[DELIVERIES].find_one({"_id": name})
    attempt = Attempt(at=at, duration_ms=1.0, status_code=200, error_kind=None, error=None, body="ok", by="t")
    update = record_attempt(doc, attempt, result, delay, at, attempts_kept=10).update
    update.get("$push", {}).pop("outbox", None)
    await db[DELIVERIES].update_one({"_id": name}, update)


async def test_the_ttl_monitor_removes_finished_work_only(own_db: Database) -> None:
    db = own_db
    await retention.ensure(db, 1)
    now = datetime.now(UTC)
    old = now - timedelta(days=2)
    names = ["delivered_old", "failed_old", "retrying_old", "requeued_old", "delivered_new"]
    await db[DELIVERIES].insert_many([delivery(old if n.endswith("old") else now, n) for n in names])
    await attempted(db, "delivered_old", old, "delivered")
    await attempted(db, "failed_old", old, "failed")
    await attempted(db, "retrying_old", old, "retry", delay=3 * 24 * 3600.0)  # a schedule of days
    await attempted(db, "requeued_old", old, "failed")
    failed: Any = await db[DELIVERIES].find_one({"_id": "requeued_old"})
    await db[DELIVERIES].bulk_write([requeue(failed, old)])
    await attempted(db, "delivered_new", now, "delivered")
    await db[NOTIFICATIONS].insert_many(
        [
            {"_id": "sent_old", "state": "sent", "created_at": old, "updated_at": old},
            {"_id": "reminder_old", "state": "pending", "created_at": old, "updated_at": old},
        ]
    )

    async def gone() -> bool:
        left = {d["_id"] async for d in db[DELIVERIES].find({}, {"_id": 1})}
        left |= {d["_id"] async for d in db[NOTIFICATIONS].find({}, {"_id": 1})}
        return not left & {"delivered_old", "failed_old", "sent_old"}

    await eventually(gone, timeout=30, what="the TTL monitor removing finished work")
    # The same pass saw the rest and kept it: pending (retrying, re-queued) and recent work.
    assert {d["_id"] async for d in db[DELIVERIES].find({}, {"_id": 1})} == {
        "retrying_old",
        "requeued_old",
        "delivered_new",
    }
    assert [d["_id"] async for d in db[NOTIFICATIONS].find({}, {"_id": 1})] == ["reminder_old"]


async def test_ensure_changes_the_expiry_in_place(own_db: Database) -> None:
    db = own_db
    await retention.ensure(db, 30)
    await retention.ensure(db, 7, review_max_ttl_seconds=36 * 3600)
    assert (await indexes(db, DELIVERIES))[retention.DELIVERIES_INDEX]["expireAfterSeconds"] == 7 * 24 * 3600
    # A sent notification's answer links outlive the longest review deadline.
    await retention.ensure(db, 1, review_max_ttl_seconds=36 * 3600)
    assert (await indexes(db, NOTIFICATIONS))[retention.NOTIFICATIONS_INDEX][
        "expireAfterSeconds"
    ] == 36 * 3600
    # An index of the same name on another filter is rebuilt.
    await db[DELIVERIES].drop_index(retention.DELIVERIES_INDEX)
    await db[DELIVERIES].create_index(
        "updated_at",
        name=retention.DELIVERIES_INDEX,
        expireAfterSeconds=5,
        partialFilterExpression={"state": "failed"},
    )
    await retention.ensure(db, 2)
    rebuilt = (await indexes(db, DELIVERIES))[retention.DELIVERIES_INDEX]
    assert (rebuilt["expireAfterSeconds"], rebuilt["partialFilterExpression"]) == (
        2 * 24 * 3600,
        {"state": {"$in": ["delivered", "failed"]}},
    )
