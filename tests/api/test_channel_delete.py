"""Deleting a channel (an agent) closes its pending reviews the way an expiry does, and the inbox
never shows a review whose channel is gone (issue #35 item 7), on the real stack."""

from __future__ import annotations

import asyncio
import base64
import functools
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

import httpx
import pytest
from aiohttp import web
from pymongo.asynchronous.database import AsyncDatabase

from sayso_api import agents, messages
from sayso_common import review_state
from sayso_common.clock import utcnow
from sayso_common.documents import MessageDoc
from sayso_common.errors import DomainError
from sayso_common.events import (
    AgentStatusChanged,
    AgentStatusData,
    MessageCreated,
    MessageData,
    ReviewExpired,
    event_to_document,
    parse_event,
)
from sayso_common.ids import new_id
from sayso_common.mongo import Database
from sayso_common.views import ReviewStatus, message_view
from sayso_common.webhook_signature import matches
from tests.realtime.clients import Received as Live
from tests.realtime.clients import sse_stream
from tests.support.receiver import Received, Receiver
from tests.support.stack import Owner, RunningStack, eventually

APPROVAL: dict[str, Any] = {"type": "approval", "payload": {}}
QUORUM: dict[str, Any] = {"type": "approval", "payload": {}, "quorum": {"approvals": 1}}
TEXT: dict[str, Any] = {"type": "text-input", "payload": {"placeholder": "why?"}}


async def _pending(owner: Owner) -> dict[str, Any]:
    resp = await owner.human.get("/api/v1/stats/pending")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def _inbox_ids(owner: Owner) -> set[str]:
    resp = await owner.human.get("/api/v1/reviews/inbox", params={"limit": 200})
    assert resp.status_code == 200, resp.text
    return {m["id"] for m in resp.json()["data"]}


def _expired_hooks(receiver: Receiver, path: str) -> dict[str, Received]:
    return {
        got.json()["message_id"]: got
        for got in receiver.at(path)
        if got.json().get("event") == "review:expired"
    }


async def test_deleting_a_channel_closes_its_pending_reviews_as_an_expiry_would(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    """Each pending review (a plain one, a quorum one, one with its own webhookUrl) ends expired
    with reason ``channel_deleted``: its webhook arrives signed with the deleted agent's secret
    and with its Basic auth and headers, also when it is a retry sent after the agent is gone; a
    long-poll waiter wakes with it, the live stream sees it, and the counts and the inbox drop the
    channel. An answered review and the owner's other channel are untouched."""
    # The agent's URL refuses each review's first webhook, and everything until the delete has
    # answered: what it accepts is a retry, sent when only the deleted agent's record is left.
    gone_at = asyncio.Event()
    accepted: dict[str, Received] = {}

    async def flaky(_: web.Request, got: Received) -> web.StreamResponse:
        body = got.json()
        if body.get("event") == "review:expired":
            if len(_tries(receiver, body["message_id"])) == 1 or not gone_at.is_set():
                return web.Response(status=503)
            accepted[body["message_id"]] = got
        return web.json_response({"ok": True})

    receiver.routes["/hook"] = flaky
    doomed = await owner.create_agent(
        name="doomed",
        webhookUrl=receiver.url("/hook"),
        webhookRetrySchedule=[1] * 10,
        webhookAuth={"username": "bot", "password": "s3cret"},
        webhookHeaders={"X-Team": "ops"},
    )
    kept = await owner.create_agent(name="kept")
    plain = await owner.post_message(doomed["id"], text="plain", review=APPROVAL)
    voted = await owner.post_message(doomed["id"], text="quorum", review=QUORUM)
    own_url = await owner.post_message(
        doomed["id"], text="own url", review=TEXT, webhookUrl=receiver.url("/own")
    )
    answered = await owner.post_message(doomed["id"], text="answered", review=APPROVAL)
    elsewhere = await owner.post_message(kept["id"], text="elsewhere", review=APPROVAL)
    assert (await owner.respond(answered["id"], {"selectedOption": "approve"})).status_code == 200
    closing = [plain["id"], voted["id"], own_url["id"]]

    before = await _pending(owner)
    assert before["byChannel"] == {doomed["id"]: 3, kept["id"]: 1}, before

    async with sse_stream(stack.url, {"Authorization": f"Bearer {owner.token}"}) as live:
        realtime = f"http://127.0.0.1:{stack.procs['realtime'].port}/metrics"
        parked = await _waiters(realtime)
        waiter = asyncio.create_task(
            owner.agent.get(f"/api/v1/reviews/{plain['id']}/wait", params={"timeout": 25000})
        )
        # Parked before the delete (one that arrives after it finds no review: 404).
        await eventually(lambda: _more_waiters(realtime, parked), what="long-poll parked")
        deleted = await owner.agent.delete(f"/api/v1/agents/{doomed['id']}")
        assert deleted.status_code == 200, deleted.text
        gone_at.set()

        woke = await waiter
        assert woke.status_code == 200, woke.text
        assert woke.json()["status"] == "expired"
        assert woke.json()["message"]["review"]["expiredReason"] == "channel_deleted"
        assert woke.json().get("timedOut") is None

        for message_id in closing:
            seen = await live.wait_for(
                functools.partial(_expiry_of, message_id), what=f"review:expired for {message_id}"
            )
            assert seen.payload["review"]["expiredReason"] == "channel_deleted"

    def both() -> dict[str, Received]:
        return {**accepted, **_expired_hooks(receiver, "/own")}

    hooks = await eventually(
        lambda: _settle(both, 3), timeout=30, what="a review:expired webhook for each pending review"
    )
    assert set(hooks) == set(closing), hooks
    assert hooks[own_url["id"]].path == "/own"
    for message_id, got in hooks.items():
        body = got.json()
        assert body["channelId"] == doomed["id"]
        assert body["response"] is None
        assert body["reason"] == "channel_deleted", body
        # Signed with the secret the agent was given: the receiver can still trust it.
        assert matches(
            [doomed["webhookSecret"]],
            got.headers["webhook-id"],
            int(got.headers["webhook-timestamp"]),
            got.body,
            got.headers["webhook-signature"],
        ), message_id
        if got.path == "/hook":
            assert got.headers["authorization"] == "Basic " + base64.b64encode(b"bot:s3cret").decode()
            assert got.headers["x-team"] == "ops"
            assert all(
                t.headers["webhook-id"] == got.headers["webhook-id"] for t in _tries(receiver, message_id)
            )
    assert answered["id"] not in _expired_hooks(receiver, "/hook")

    after = await _pending(owner)
    assert after["byChannel"] == {kept["id"]: 1}, after
    assert after["total"] == 1
    assert await _inbox_ids(owner) == {elsewhere["id"]}
    gone = await owner.human.get(f"/api/v1/reviews/{plain['id']}")
    assert gone.status_code == 404
    again = await owner.agent.delete(f"/api/v1/agents/{doomed['id']}")
    assert again.status_code == 404


def _tries(receiver: Receiver, message_id: str) -> list[Received]:
    return [got for got in receiver.at("/hook") if got.json().get("message_id") == message_id]


async def _settle(read: Callable[[], dict[str, Received]], count: int) -> dict[str, Received] | None:
    found = read()
    return found if len(found) >= count else None


def _expiry_of(message_id: str, item: Live) -> bool:
    return item.name == "review:expired" and item.payload["id"] == message_id


async def _waiters(metrics_url: str) -> float:
    """The realtime process's waiters gauge: how the test knows a long-poll is parked."""
    async with httpx.AsyncClient(timeout=10) as probe:
        text = (await probe.get(metrics_url)).text
    return next(
        float(line.split()[1]) for line in text.splitlines() if line.startswith("sayso_realtime_waiters ")
    )


async def _more_waiters(metrics_url: str, before: float) -> bool:
    return await _waiters(metrics_url) > before


async def test_each_review_is_closed_once_when_a_delete_is_asked_again(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    """Two deletes of the same channel at once (a client retrying): each pending review gets one
    ``review.expired`` event and one webhook, not one per request."""
    doomed = await owner.create_agent(name="twice", webhookUrl=receiver.url("/twice"))
    ids = [(await owner.post_message(doomed["id"], text=f"r{i}", review=APPROVAL))["id"] for i in range(5)]
    first, second = await asyncio.gather(
        owner.agent.delete(f"/api/v1/agents/{doomed['id']}"),
        owner.agent.delete(f"/api/v1/agents/{doomed['id']}"),
    )
    assert sorted([first.status_code, second.status_code])[0] == 200, (first.text, second.text)
    await eventually(
        lambda: _settle(lambda: _expired_hooks(receiver, "/twice"), 5), timeout=30, what="five webhooks"
    )
    mongo = stack.mongo()
    try:
        db = mongo[stack.mongo_db]

        async def stored() -> list[str] | None:
            events = await db.events.find({"type": "review.expired", "channel_id": doomed["id"]}).to_list()
            return [e["data"]["message"]["id"] for e in events] if len(events) >= 5 else None

        published = await eventually(stored, timeout=30, what="the relay's copies of the events")
        await asyncio.sleep(1.0)  # room for a duplicate to show up
        published = await stored() or []
    finally:
        await mongo.close()
    assert sorted(published) == sorted(ids)
    assert len(receiver.at("/twice")) == 5


async def test_a_channel_with_many_pending_reviews_tells_its_agent_of_each_once(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    """More pending reviews than two of the delete's batches (messages._CLOSING_BATCH: 250 at 100
    a batch; the 1,200 from when a batch was 500 took 19-41 s): one signed review:expired webhook
    each, none twice. Prints how long the delete and the webhooks took."""
    doomed = await owner.create_agent(name="busy", webhookUrl=receiver.url("/many"))
    slots = asyncio.Semaphore(16)

    async def post(i: int) -> str:
        async with slots:
            return str((await owner.post_message(doomed["id"], text=f"r{i}", review=APPROVAL))["id"])

    count = 2 * messages._CLOSING_BATCH + messages._CLOSING_BATCH // 2
    ids = set(await asyncio.gather(*(post(i) for i in range(count))))
    started = time.perf_counter()
    deleted = await owner.agent.delete(f"/api/v1/agents/{doomed['id']}")
    took = time.perf_counter() - started
    assert deleted.status_code == 200, deleted.text
    await receiver.wait_for("/many", count, timeout=120)
    all_in = time.perf_counter() - started
    print(
        f"\ndelete of a channel with {count} pending reviews: {took * 1000:.0f} ms; all webhooks in {all_in:.1f} s"
    )
    hooks = receiver.at("/many")
    assert sorted(h.json()["message_id"] for h in hooks) == sorted(ids)
    assert all(h.json()["reason"] == "channel_deleted" for h in hooks)
    assert len({h.headers["webhook-id"] for h in hooks}) == count


async def test_reviews_left_by_a_channel_deleted_earlier_are_not_in_the_inbox(
    stack: RunningStack, owner: Owner
) -> None:
    """Old data: pending reviews whose channel was deleted before deletes closed them (stored as
    they were left) are in neither the counts, the inbox nor the pending list."""
    kept = await owner.create_agent(name="still here")
    mine = await owner.post_message(kept["id"], text="mine", review=APPROVAL)
    mongo = stack.mongo()
    try:
        db = mongo[stack.mongo_db]
        template = await db.messages.find_one({"_id": mine["id"]})
        assert template is not None
        ghost_channel = new_id("agt")
        ghosts = [
            {**template, "_id": new_id("msg"), "channel_id": ghost_channel, "outbox": []} for _ in range(3)
        ]
        await db.messages.insert_many(ghosts)
    finally:
        await mongo.close()
    counts = await _pending(owner)
    assert counts["byChannel"] == {kept["id"]: 1}, counts
    assert counts["total"] == 1
    assert await _inbox_ids(owner) == {mine["id"]}
    listed = await owner.agent.get("/api/v1/reviews/pending")
    assert [m["id"] for m in listed.json()] == [mine["id"]]


# --- a delete cut short, on a database of its own (no relay: what waits to be published stays) --


def _message(i: int, status: ReviewStatus | None, now: datetime) -> MessageDoc:
    doc: MessageDoc = {
        "_id": f"msg_{i}",
        "channel_id": "agt_x",
        "owner_id": "usr_x",
        "sender_type": "agent",
        "text": f"m{i}",
        "created_at": now,
    }
    if status is not None:
        doc["review"] = {
            "type": "approval",
            "payload": {},
            "status": status,
            "expires_at": now + timedelta(hours=1),
        }
    created = MessageCreated(
        channel_id="agt_x", owner_id="usr_x", data=MessageData(message=message_view(doc))
    )
    doc["outbox"] = [event_to_document(created)]
    return doc


async def test_a_delete_cut_short_is_finished_by_asking_again(scratch: AsyncDatabase[Any]) -> None:
    """A delete that stopped after closing two of three pending reviews and copying their events:
    asked again, it closes the third, keeps every event that was waiting exactly once (each
    review's one ``review.expired``, the messages' unpublished ``message.created``, the agent's
    own ``agent.status``), and only then deletes; the deleted agent's webhook settings stay."""
    db = cast(Database, scratch)
    now = utcnow()
    status = AgentStatusChanged(
        channel_id="agt_x",
        owner_id="usr_x",
        data=AgentStatusData(agent_id="agt_x", status="busy", last_activity_at=now),
    )
    await scratch.agents.insert_one(
        {
            "_id": "agt_x",
            "owner_id": "usr_x",
            "name": "cut short",
            "created_at": now,
            "webhook_url": "https://agent.example/hook",
            "signing_secrets": [{"secret_enc": "sealed", "created_at": now, "expires_at": None}],
            "members": [{"user_id": "usr_m", "email": "m@x.test", "added_at": now}],
            "outbox": [event_to_document(status)],
        }
    )
    statuses: list[ReviewStatus | None] = ["pending", "pending", "pending", "completed", None]
    docs = [_message(i, s, now) for i, s in enumerate(statuses)]
    await scratch.messages.insert_many(docs)
    # Where the first delete stopped: two reviews closed, their events copied, nothing deleted.
    await scratch.messages.bulk_write([review_state.withdrawn(d, now) for d in docs[:2]])
    first = await scratch.messages.find({"_id": {"$in": ["msg_0", "msg_1"]}}).to_list()
    await messages.keep_events(db, first, "agt_x", "usr_x", now + timedelta(days=1))

    await agents.delete_agent(db, "usr_x", "agt_x", timedelta(days=3))

    assert await scratch.messages.count_documents({}) == 0
    assert await scratch.agents.count_documents({}) == 0
    left = [parse_event(d["outbox"][0]) for d in await scratch.deleted_channel_events.find().to_list()]
    expired = sorted(e.data.message.id for e in left if isinstance(e, ReviewExpired))
    assert expired == ["msg_0", "msg_1", "msg_2"], "each pending review closed once, none twice"
    assert all(
        e.data.message.review and e.data.message.review.expired_reason == "channel_deleted"
        for e in left
        if isinstance(e, ReviewExpired)
    )
    assert sorted(e.data.message.id for e in left if isinstance(e, MessageCreated)) == [
        f"msg_{i}" for i in range(5)
    ]
    assert [e.id for e in left if isinstance(e, AgentStatusChanged)] == [status.id]
    assert len({e.id for e in left}) == len(left) == 9
    grave = await scratch.deleted_agents.find_one({"_id": "agt_x"})
    assert grave is not None
    assert grave["webhook_url"] == "https://agent.example/hook"
    assert grave["signing_secrets"][0]["secret_enc"] == "sealed"
    assert "members" not in grave
    with pytest.raises(DomainError) as again:
        await agents.delete_agent(db, "usr_x", "agt_x", timedelta(days=3))
    assert again.value.code.status == 404
