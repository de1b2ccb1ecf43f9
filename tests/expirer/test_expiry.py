"""The expirer against the real stack (deadlines, races, webhooks) and, for scale and concurrency,
against scratch databases with their own expirer processes."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from sayso_common.clock import as_utc, utcnow
from sayso_common.ids import new_id
from sayso_common.mongo import Database, create_client, ensure_indexes
from sayso_common.settings import ServiceSettings
from sayso_devstack.processes import spawn_service, wait_healthy
from sayso_expirer.expiry import expire_due
from tests.conftest import Infra
from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack, eventually

APPROVE = {"selectedOption": "approve"}


async def _review(owner: Owner, channel: str, seconds: int) -> dict[str, Any]:
    return await owner.post_message(
        channel, text="expiring", review={"type": "approval", "payload": {}, "expiresInSeconds": seconds}
    )


def _deadline(msg: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(msg["review"]["expiresAt"].replace("Z", "+00:00"))


async def _settled(db: Database, message_ids: list[str]) -> list[dict[str, Any]]:
    """The messages once the relay has published every event they hold (outbox empty)."""

    async def check() -> list[dict[str, Any]] | None:
        docs = await db.messages.find({"_id": {"$in": message_ids}}).to_list()
        done = len(docs) == len(message_ids) and all(
            d["review"]["status"] != "pending" and not d.get("outbox") for d in docs
        )
        return docs if done else None

    return await eventually(check, timeout=30, what="reviews closed and their events relayed")


async def _review_events(db: Database, message_ids: list[str]) -> dict[str, list[str]]:
    """message id -> the review.* event types stored for it (the relay's copy of what it published)."""
    out: dict[str, list[str]] = {m: [] for m in message_ids}
    async for doc in db.events.find(
        {"type": {"$in": ["review.responded", "review.expired"]}, "data.message.id": {"$in": message_ids}}
    ):
        out[doc["data"]["message"]["id"]].append(doc["type"])
    return out


async def test_reviews_expire_on_time_never_early_with_one_event(stack: RunningStack, owner: Owner) -> None:
    agent = await owner.create_agent(name="deadlines")
    msgs = [await _review(owner, agent["id"], seconds) for seconds in (1, 1, 2, 2, 3)]
    mongo = stack.mongo()
    try:
        db = mongo.sayso
        docs = await _settled(db, [m["id"] for m in msgs])
        late = []
        for doc in docs:
            review = doc["review"]
            assert review["status"] == "expired"
            expired_at, expires_at = as_utc(review["expired_at"]), as_utc(review["expires_at"])
            assert expired_at >= expires_at, "never before the deadline"
            late.append((expired_at - expires_at).total_seconds())
        print(f"\nexpiry lateness after the deadline: max {max(late) * 1000:.0f} ms, all {sorted(late)}")
        events = await _review_events(db, [m["id"] for m in msgs])
        assert all(types == ["review.expired"] for types in events.values()), events
    finally:
        await mongo.close()
    late_answer = await owner.respond(msgs[0]["id"], APPROVE)
    assert late_answer.status_code == 409
    assert late_answer.json()["error"]["code"] == "review_expired"


async def test_a_response_racing_the_deadline_gets_exactly_one_outcome(
    stack: RunningStack, owner: Owner
) -> None:
    """Responses sent from 200 ms before to 200 ms after each deadline, while the expirer works
    on the same reviews: each review ends completed (response 200) or expired (response 409),
    never both, with exactly one event."""
    agent = await owner.create_agent(name="racing")
    msgs = [await _review(owner, agent["id"], 2) for _ in range(16)]
    offsets = [-0.2 + 0.4 * i / (len(msgs) - 1) for i in range(len(msgs))]

    async def respond_at(msg: dict[str, Any], offset: float) -> int:
        delay = (_deadline(msg) - utcnow()).total_seconds() + offset
        await asyncio.sleep(max(0.0, delay))
        return (await owner.respond(msg["id"], APPROVE)).status_code

    codes = await asyncio.gather(*(respond_at(m, o) for m, o in zip(msgs, offsets, strict=True)))
    mongo = stack.mongo()
    try:
        db = mongo.sayso
        docs = {d["_id"]: d for d in await _settled(db, [m["id"] for m in msgs])}
        events = await _review_events(db, list(docs))
    finally:
        await mongo.close()
    outcomes = []
    for msg, code in zip(msgs, codes, strict=True):
        status = docs[msg["id"]]["review"]["status"]
        assert (code, status) in ((200, "completed"), (409, "expired")), (code, status)
        expected = "review.responded" if status == "completed" else "review.expired"
        assert events[msg["id"]] == [expected], events[msg["id"]]
        outcomes.append(status)
    print(f"\nracing responses: {outcomes.count('completed')} completed, {outcomes.count('expired')} expired")


async def test_the_expired_review_webhook_is_delivered(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    agent = await owner.create_agent(name="hooked", webhookUrl=receiver.url("/hook"))
    msg = await _review(owner, agent["id"], 1)

    async def delivered() -> Any:
        for got in receiver.at("/hook"):
            body = got.json()
            if body.get("event") == "review:expired" and body.get("message_id") == msg["id"]:
                return got
        return None

    got = await eventually(delivered, timeout=30, what="review:expired webhook")
    body = got.json()
    assert body["channelId"] == agent["id"]
    assert body["review_type"] == "approval"
    assert got.headers["webhook-id"].startswith("evt_")
    assert got.headers["webhook-signature"].startswith("v1,")


# --- scratch databases: many reviews, several expirers --------------------------------------


@pytest.fixture
async def scratch(infra: Infra) -> AsyncIterator[tuple[str, Database]]:
    name = f"expiry_{secrets.token_hex(4)}"
    settings = ServiceSettings(mongo_url=infra.mongo_url, mongo_db=name, secret_key="unused-" + "x" * 32)
    client = create_client(settings)
    db = client[name]
    await ensure_indexes(db)
    try:
        yield name, db
    finally:
        await client.drop_database(name)
        await client.close()


async def _insert_due(db: Database, count: int, due: datetime) -> list[str]:
    now = utcnow()
    docs = [
        {
            "_id": new_id("msg"),
            "channel_id": f"agt_{i % 50}",
            "owner_id": f"usr_{i % 7}",
            "text": f"review {i}",
            "sender_type": "agent",
            "status": "info",
            "created_at": now,
            "review": {"type": "approval", "payload": {}, "status": "pending", "expires_at": due},
        }
        for i in range(count)
    ]
    for start in range(0, count, 2000):
        await db.messages.insert_many(docs[start : start + 2000], ordered=False)
    return [str(d["_id"]) for d in docs]


async def _assert_each_expired_once(db: Database, count: int) -> None:
    pipeline: list[dict[str, Any]] = [
        {"$project": {"status": "$review.status", "events": {"$size": {"$ifNull": ["$outbox", []]}}}},
        {"$group": {"_id": {"status": "$status", "events": "$events"}, "n": {"$sum": 1}}},
    ]
    groups = {
        (g["_id"]["status"], g["_id"]["events"]): g["n"] async for g in await db.messages.aggregate(pipeline)
    }
    assert groups == {("expired", 1): count}, groups
    types = await db.messages.distinct("outbox.type")
    assert types == ["review.expired"]


async def test_concurrent_expirers_expire_each_review_exactly_once(
    infra: Infra, scratch: tuple[str, Database]
) -> None:
    """Four expirer passes at once, each with its own connection, over the same 3,000 due reviews."""
    name, db = scratch
    await _insert_due(db, 3000, utcnow() - timedelta(seconds=1))
    settings = ServiceSettings(mongo_url=infra.mongo_url, mongo_db=name, secret_key="unused-" + "x" * 32)
    clients = [create_client(settings) for _ in range(4)]

    async def expirer(client_db: Database) -> int:
        total = 0
        while True:
            found, expired = await expire_due(client_db, utcnow(), 500)
            total += expired
            if found == 0:
                return total

    try:
        totals = await asyncio.gather(*(expirer(c[name]) for c in clients))
    finally:
        for c in clients:
            await c.close()
    assert sum(totals) == 3000, totals
    print(f"\nreviews expired per concurrent expirer: {totals}")
    await _assert_each_expired_once(db, 3000)


@pytest.mark.slow
async def test_ten_thousand_reviews_due_at_once_with_two_expirer_processes(
    infra: Infra, scratch: tuple[str, Database]
) -> None:
    """Measures (prints, does not assert) how long 10,000 reviews due at the same moment take to
    expire with two expirer processes side by side, and checks each expired exactly once."""
    name, db = scratch
    env = infra.service_env(SAYSO_MONGO_DB=name)
    procs = [spawn_service("expirer", infra.log_dir, env, name=f"expirer-bulk-{i}") for i in range(2)]
    try:
        for proc in procs:
            wait_healthy(proc)
        due = utcnow() + timedelta(seconds=3)
        await _insert_due(db, 10_000, due)
        await asyncio.sleep(max(0.0, (due - utcnow()).total_seconds()))
        started = time.perf_counter()

        async def all_expired() -> bool:
            return await db.messages.count_documents({"review.status": "pending"}) == 0

        await eventually(all_expired, timeout=120, what="10,000 reviews expired")
        elapsed = time.perf_counter() - started
        last = await db.messages.find_one({}, sort=[("review.expired_at", -1)])
        assert last is not None
        server_side = (as_utc(last["review"]["expired_at"]) - due).total_seconds()
        print(
            f"\n10,000 reviews due at once: all expired {elapsed:.2f} s after the deadline "
            f"(last expired_at {server_side:.2f} s after it), two expirer processes"
        )
    finally:
        for proc in procs:
            proc.stop()
    await _assert_each_expired_once(db, 10_000)
