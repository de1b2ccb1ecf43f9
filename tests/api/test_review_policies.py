"""Review policies on the real stack: ``onExpire`` defaults, quorum votes racing from two and three
users, and the events, reads and webhooks that carry them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.realtime.clients import sse_stream
from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack, eventually

APPROVE = {"selectedOption": "approve"}
REJECT = {"selectedOption": "reject"}
DENY = {"selectedOption": "reject", "comment": "nobody answered in time"}
FORM = {
    "type": "form",
    "payload": {
        "fields": [
            {"name": "title", "label": "Title", "type": "text", "required": True},
            {"name": "pin", "label": "PIN", "type": "password"},
        ]
    },
}
SINGLE = {
    "type": "selection",
    "payload": {"mode": "single", "items": [{"id": "a", "label": "A"}, {"id": "b", "label": "B"}]},
}

# (review, expected status, field at fault)
CREATION: list[tuple[str, dict[str, Any], int, str | None]] = [
    ("unknown option", {"type": "approval", "onExpire": {"response": {"selectedOption": "nope"}}}, 422, "review.onExpire.response.selectedOption"),
    ("extra key", {"type": "approval", "onExpire": {"response": {**REJECT, "why": 1}}}, 422, "review.onExpire.response.why"),
    ("not an object", {"type": "approval", "onExpire": {"response": "reject"}}, 422, "review.onExpire.response"),
    ("no response", {"type": "approval", "onExpire": {}}, 422, "review.onExpire.response"),
    ("dismissal without dismissLabel", {"type": "approval", "onExpire": {"response": {"_dismissed": True}}}, 422, "review.onExpire.response.selectedOption"),
    ("dismissal", {"type": "approval", "payload": {"dismissLabel": "Skip"}, "onExpire": {"response": {"_dismissed": True}}}, 201, None),
    ("approval", {"type": "approval", "onExpire": {"response": DENY}}, 201, None),
    ("text too short", {"type": "text-input", "payload": {"minLength": 3}, "onExpire": {"response": {"text": "no"}}}, 422, "review.onExpire.response.text"),
    ("text", {"type": "text-input", "onExpire": {"response": {"text": "skipped"}}}, 201, None),
    ("form missing required", {**FORM, "onExpire": {"response": {"pin": "1234"}}}, 422, "review.onExpire.response.title"),
    ("selection two of single", {**SINGLE, "onExpire": {"response": {"selectedIds": ["a", "b"]}}}, 422, "review.onExpire.response.selectedIds"),
    ("selection", {**SINGLE, "onExpire": {"response": {"selectedIds": ["b"]}}}, 201, None),
    ("freeform", {"type": "freeform", "onExpire": {"response": {"decision": "deny"}}}, 201, None),
    ("quorum on a selection", {**SINGLE, "quorum": {"approvals": 2}}, 422, "review.quorum"),
    ("quorum of zero", {"type": "approval", "quorum": {"approvals": 0}}, 422, "review.quorum.approvals"),
    ("quorum beyond any channel", {"type": "approval", "quorum": {"approvals": 102}}, 422, "review.quorum.approvals"),
    ("quorum not a number", {"type": "approval", "quorum": {"approvals": "two"}}, 422, "review.quorum.approvals"),
    ("quorum without a rejecting option", {"type": "approval", "payload": {"options": [{"id": "yes", "label": "Yes"}, {"id": "ok", "label": "OK"}]}, "quorum": {"approvals": 1}}, 422, "review.payload.options"),
    ("quorum without an approving option", {"type": "approval", "payload": {"options": [{"id": "a", "label": "A"}, {"id": "b", "label": "B"}]}, "quorum": {"approvals": 1}}, 422, "review.payload.options"),
    ("quorum larger than the channel", {"type": "approval", "quorum": {"approvals": 5}, "onExpire": {"response": DENY}}, 201, None),
]  # fmt: skip


@pytest.fixture(scope="module")
async def team(stack: RunningStack) -> AsyncIterator[list[Owner]]:
    """Three users for the module (creating a user is slow: Argon2): the first owns the channels
    each test makes, the other two are added as members where a test says so."""
    async with stack.new_owners(3) as people:
        yield people


@pytest.mark.parametrize(
    ("review", "status", "field"), [c[1:] for c in CREATION], ids=[c[0] for c in CREATION]
)
async def test_policies_are_validated_at_creation(
    team: list[Owner], review: dict[str, Any], status: int, field: str | None
) -> None:
    owner = team[0]
    agent = await owner.create_agent()
    resp = await owner.agent.post(
        "/api/v1/messages", json={"channelId": agent["id"], "text": "?", "review": review}
    )
    assert resp.status_code == status, resp.text
    if field is not None:
        assert resp.json()["error"]["field"] == field, resp.text
        assert (
            await owner.agent.get("/api/v1/reviews/pending", params={"channel": agent["id"]})
        ).json() == []
        return
    stored = (await owner.agent.get(f"/api/v1/reviews/{resp.json()['id']}")).json()["review"]
    if "onExpire" in review:
        assert stored["onExpire"] == review["onExpire"]
    if "quorum" in review:
        assert (stored["quorum"], stored["votes"]) == ({**review["quorum"], "approved": 0}, [])
    assert stored["defaultResponse"] is None  # only once it expired


async def test_a_password_in_a_default_is_hidden_like_an_answer(team: list[Owner]) -> None:
    owner = team[0]
    agent = await owner.create_agent()
    msg = await owner.post_message(
        agent["id"], review={**FORM, "onExpire": {"response": {"title": "t", "pin": "1234"}}}
    )
    assert msg["review"]["onExpire"]["response"] == {"title": "t", "pin": "***REDACTED***"}


async def test_an_expired_review_carries_its_default_everywhere(
    stack: RunningStack, team: list[Owner], receiver: Receiver
) -> None:
    owner = team[0]
    agent = await owner.create_agent(webhookUrl=receiver.url("/placet"))
    review = {"type": "approval", "expiresInSeconds": 1, "onExpire": {"response": DENY}}
    async with sse_stream(stack.url, {"x-api-key": owner.api_key}, {"channel": agent["id"]}) as live:
        msg = await owner.post_message(agent["id"], text="Drop the table?", review=review)
        processa = await owner.post_message(
            agent["id"],
            text="Send it?",
            review=review,
            webhookUrl=receiver.url("/processa"),
            webhookFormat="processa",
        )
        expired = await live.wait_for(lambda i: i.name == "review:expired" and i.payload["id"] == msg["id"])
        assert expired.payload["review"]["status"] == "expired"
        assert expired.payload["review"]["defaultResponse"] == DENY
    [hook] = await receiver.wait_for("/placet")
    body = hook.json()
    assert (body["event"], body["message_id"], body["response"]) == ("review:expired", msg["id"], None)
    assert body["defaultResponse"] == DENY
    [draft] = await receiver.wait_for("/processa")
    assert draft.json()["event"] == "draft.rejected"
    assert draft.json()["draft"]["rejectionReason"] == "expired"
    read = (await owner.agent.get(f"/api/v1/reviews/{msg['id']}")).json()["review"]
    assert (read["status"], read["response"], read["defaultResponse"]) == ("expired", None, DENY)
    waited = await owner.agent.get(f"/api/v1/reviews/{msg['id']}/wait", params={"channel": agent["id"]})
    assert waited.json()["status"] == "expired"
    assert waited.json()["defaultResponse"] == DENY
    late = await owner.respond(processa["id"], APPROVE)
    assert (late.status_code, late.json()["error"]["code"]) == (409, "review_expired")


async def shared_agent(team: list[Owner], members: int, **body: Any) -> dict[str, Any]:
    owner = team[0]
    agent = await owner.create_agent(**body)
    for member in team[1 : 1 + members]:
        added = await owner.human.post(f"/api/v1/agents/{agent['id']}/members", json={"email": member.email})
        assert added.status_code == 201, added.text
    return agent


async def settled(stack: RunningStack, message_id: str) -> dict[str, Any]:
    """The message once the relay has published everything it holds, and its stored events."""
    mongo = stack.mongo()
    try:
        db = mongo.sayso

        async def check() -> dict[str, Any] | None:
            doc = await db.messages.find_one({"_id": message_id})
            return doc if doc and doc["review"]["status"] != "pending" and not doc.get("outbox") else None

        doc = await eventually(check, timeout=30, what="review closed and its events relayed")
        events = await db.events.find({"data.message.id": message_id}).sort("_id", 1).to_list()
        return {"doc": doc, "types": [e["type"] for e in events]}
    finally:
        await mongo.close()


async def deliveries_per_message(stack: RunningStack, message_ids: list[str]) -> dict[str, int]:
    """How many delivery documents the dispatcher made for each message.

    Call it once the receiver has every webhook: the dispatcher creates deliveries after the
    relay has published, so counting any earlier races it."""
    mongo = stack.mongo()
    try:
        counts = {message_id: 0 for message_id in message_ids}
        async for row in mongo.sayso.deliveries.find({"message_id": {"$in": message_ids}}, {"message_id": 1}):
            counts[row["message_id"]] += 1
        return counts
    finally:
        await mongo.close()


async def test_two_users_racing_on_a_quorum_of_two(
    stack: RunningStack, team: list[Owner], receiver: Receiver
) -> None:
    agent = await shared_agent(team, 1, webhookUrl=receiver.url("/q2"))
    msgs = [
        await team[0].post_message(agent["id"], review={"type": "approval", "quorum": {"approvals": 2}})
        for _ in range(6)
    ]
    # Every review's two votes at once, all reviews at once.
    votes = [person.respond(m["id"], APPROVE) for m in msgs for person in team[:2]]
    codes = [r.status_code for r in await asyncio.gather(*votes)]
    assert codes == [200] * len(votes), codes
    for msg in msgs:
        state = await settled(stack, msg["id"])
        review = state["doc"]["review"]
        assert (review["status"], review["response"]) == ("completed", APPROVE)
        assert sorted(v["user_id"] for v in review["votes"]) == sorted([team[0].user_id, team[1].user_id])
        assert state["types"].count("review.voted") == 2
        assert state["types"].count("review.responded") == 1, state["types"]
    hooks = await receiver.wait_for("/q2", count=len(msgs))
    await asyncio.sleep(1)  # a second webhook for any of them would have been sent by now
    assert len(receiver.at("/q2")) == len(msgs)
    assert await deliveries_per_message(stack, [m["id"] for m in msgs]) == {m["id"]: 1 for m in msgs}
    assert sorted(h.json()["message_id"] for h in hooks) == sorted(m["id"] for m in msgs)
    assert all(len(h.json()["votes"]) == 2 for h in hooks)


async def test_three_users_racing_on_a_quorum_of_two(
    stack: RunningStack, team: list[Owner], receiver: Receiver
) -> None:
    agent = await shared_agent(team, 2, webhookUrl=receiver.url("/q3"))
    msgs = [
        await team[0].post_message(agent["id"], review={"type": "approval", "quorum": {"approvals": 2}})
        for _ in range(6)
    ]
    answers = await asyncio.gather(*(person.respond(m["id"], APPROVE) for m in msgs for person in team))
    for i, msg in enumerate(msgs):
        mine = answers[3 * i : 3 * i + 3]
        codes = sorted(r.status_code for r in mine)
        # Two votes land and decide; the third finds the review answered.
        assert codes == [200, 200, 409], [r.text for r in mine]
        assert next(r for r in mine if r.status_code == 409).json()["error"]["code"] == "already_responded"
        state = await settled(stack, msg["id"])
        assert len(state["doc"]["review"]["votes"]) == 2
        assert state["types"].count("review.responded") == 1, state["types"]
    await receiver.wait_for("/q3", count=len(msgs))
    await asyncio.sleep(1)
    assert len(receiver.at("/q3")) == len(msgs)
    assert await deliveries_per_message(stack, [m["id"] for m in msgs]) == {m["id"]: 1 for m in msgs}


async def test_a_quorum_is_rejected_as_soon_as_it_cannot_be_reached(
    stack: RunningStack, team: list[Owner], receiver: Receiver
) -> None:
    owner, first, second = team
    agent = await shared_agent(team, 2, webhookUrl=receiver.url("/reject"))
    msg = await owner.post_message(agent["id"], review={"type": "approval", "quorum": {"approvals": 2}})
    one = await owner.respond(msg["id"], {"selectedOption": "reject", "comment": "not now"})
    assert one.status_code == 200, one.text
    assert one.json()["review"]["status"] == "pending"  # two members could still approve
    again = await owner.respond(msg["id"], APPROVE)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "already_voted")
    two = await first.respond(msg["id"], REJECT)
    assert two.status_code == 200, two.text
    review = two.json()["review"]
    assert (review["status"], review["response"], review["respondedBy"]) == (
        "completed",
        REJECT,
        first.user_id,
    )
    assert [(v["email"], v["response"]) for v in review["votes"]] == [
        (owner.email, {"selectedOption": "reject", "comment": "not now"}),
        (first.email, REJECT),
    ]
    late = await second.respond(msg["id"], APPROVE)
    assert late.status_code == 409
    [hook] = await receiver.wait_for("/reject")
    assert hook.json()["response"] == REJECT
    assert [v["userId"] for v in hook.json()["votes"]] == [owner.user_id, first.user_id]
    assert (await settled(stack, msg["id"]))["types"].count("review.responded") == 1


async def test_every_vote_is_a_review_voted_event_over_sse(stack: RunningStack, team: list[Owner]) -> None:
    owner, member, _ = team
    agent = await shared_agent(team, 1)
    msg = await owner.post_message(agent["id"], review={"type": "approval", "quorum": {"approvals": 2}})
    async with (
        sse_stream(stack.url, {"Authorization": f"Bearer {member.token}"}) as member_live,
        sse_stream(stack.url, {"x-api-key": owner.api_key}, {"channel": agent["id"]}) as agent_live,
    ):
        assert (await owner.respond(msg["id"], APPROVE)).status_code == 200
        for live in (member_live, agent_live):
            voted = await live.wait_for(lambda i: i.name == "review:voted" and i.payload["id"] == msg["id"])
            assert voted.payload["vote"]["email"] == owner.email
            assert voted.payload["vote"]["response"] == APPROVE
            assert voted.payload["review"]["status"] == "pending"
        assert (await member.respond(msg["id"], APPROVE)).status_code == 200
        for live in (member_live, agent_live):
            done = await live.wait_for(
                lambda i: i.name == "review:responded" and i.payload["id"] == msg["id"]
            )
            deciding = await live.wait_for(
                lambda i: i.name == "review:voted" and i.payload["vote"]["email"] == member.email
            )
            # The deciding vote's event already shows the outcome (the two are written together,
            # but travel on different topics: either may arrive first).
            assert deciding.payload["review"]["status"] == "completed"
            assert len(done.payload["review"]["votes"]) == 2
            names = [i.name for i in live.items if i.payload.get("id") == msg["id"]]
            assert sorted(names) == ["review:responded", "review:voted", "review:voted"], names
