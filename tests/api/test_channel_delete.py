"""Deleting a channel (an agent) closes its pending reviews the way an expiry does, and the inbox
never shows a review whose channel is gone (issue #35 item 7), on the real stack."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import httpx

from sayso_common.ids import new_id
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
    with reason ``channel_deleted``: its webhook arrives signed with the deleted agent's secret,
    a long-poll waiter wakes with it, the live stream sees it, and the counts and the inbox drop
    the channel. An answered review and the owner's other channel are untouched."""
    doomed = await owner.create_agent(name="doomed", webhookUrl=receiver.url("/hook"))
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
        return {**_expired_hooks(receiver, "/hook"), **_expired_hooks(receiver, "/own")}

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
    assert answered["id"] not in _expired_hooks(receiver, "/hook")

    after = await _pending(owner)
    assert after["byChannel"] == {kept["id"]: 1}, after
    assert after["total"] == 1
    assert await _inbox_ids(owner) == {elsewhere["id"]}
    gone = await owner.human.get(f"/api/v1/reviews/{plain['id']}")
    assert gone.status_code == 404
    again = await owner.agent.delete(f"/api/v1/agents/{doomed['id']}")
    assert again.status_code == 404


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
