"""Human responses on the stack: validation, first response wins, inbox. The rules (each review
type, answers after the deadline) are units in test_reviewing.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.stack import Owner, RunningStack, eventually

# One case on the stack: every review type's validation is a unit (tests/api/test_reviewing.py).
CASES: list[tuple[dict[str, Any], Any, Any, str]] = [
    (
        {"type": "approval", "payload": {}},
        {"selectedOption": "approve", "comment": "ship it"},
        {"selectedOption": "nope"},
        "response.selectedOption",
    ),
]


@pytest.mark.parametrize(("review", "good", "bad", "field"), CASES, ids=[c[0]["type"] for c in CASES])
async def test_respond_per_type(
    owner: Owner, review: dict[str, Any], good: Any, bad: Any, field: str
) -> None:
    agent = await owner.create_agent()
    msg = await owner.post_message(agent["id"], review=review)
    if bad is not None:
        rejected = await owner.respond(msg["id"], bad)
        assert rejected.status_code == 422, rejected.text
        assert rejected.json()["error"]["field"] == field
        assert (await owner.agent.get(f"/api/v1/reviews/{msg['id']}")).json()["review"]["status"] == "pending"
    ok = await owner.respond(msg["id"], good)
    assert ok.status_code == 200, ok.text
    review_out = ok.json()["review"]
    assert review_out["status"] == "completed"
    assert review_out["response"] == good
    assert review_out["respondedBy"] == owner.user_id
    assert review_out["respondedAt"] is not None
    again = await owner.respond(msg["id"], good)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_responded"


async def test_first_response_wins_under_concurrency(stack: RunningStack, owner: Owner) -> None:
    agent = await owner.create_agent()
    msg = await owner.post_message(agent["id"], review={"type": "approval", "payload": {}})
    answers = await asyncio.gather(
        *(owner.respond(msg["id"], {"selectedOption": "approve" if i % 2 else "reject"}) for i in range(50))
    )
    codes = sorted(a.status_code for a in answers)
    assert codes.count(200) == 1, codes
    assert codes.count(409) == 49, codes
    winner = next(a for a in answers if a.status_code == 200).json()["review"]["response"]
    stored = (await owner.agent.get(f"/api/v1/reviews/{msg['id']}")).json()["review"]["response"]
    assert stored == winner
    mongo = stack.mongo()
    try:
        await eventually(
            lambda: mongo.sayso.events.find_one({"type": "review.responded", "channel_id": agent["id"]}),
            what="review.responded published",
        )
        await asyncio.sleep(1.0)  # give a (wrong) second event time to show up
        count = await mongo.sayso.events.count_documents(
            {"type": "review.responded", "channel_id": agent["id"]}
        )
    finally:
        await mongo.close()
    assert count == 1


async def test_agents_cannot_answer_their_own_reviews(owner: Owner) -> None:
    agent = await owner.create_agent()
    msg = await owner.post_message(agent["id"], review={"type": "approval", "payload": {}})
    resp = await owner.agent.post(
        f"/api/v1/reviews/{msg['id']}/respond", json={"response": {"selectedOption": "approve"}}
    )
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "user_required"


async def test_inbox_and_pending(owner: Owner) -> None:
    a1 = await owner.create_agent(name="one")
    a2 = await owner.create_agent(name="two")
    m1 = await owner.post_message(a1["id"], review={"type": "approval", "payload": {}})
    m2 = await owner.post_message(a2["id"], review={"type": "text-input", "payload": {}})
    await owner.post_message(a2["id"], text="no review")
    inbox = (await owner.human.get("/api/v1/reviews/inbox")).json()["data"]
    assert [m["id"] for m in inbox] == [m2["id"], m1["id"]]
    pending = (await owner.agent.get("/api/v1/reviews/pending", params={"channel": a1["id"]})).json()
    assert [m["id"] for m in pending] == [m1["id"]]
    await owner.respond(m1["id"], {"selectedOption": "reject"})
    inbox = (await owner.human.get("/api/v1/reviews/inbox", params={"limit": 1})).json()
    assert [m["id"] for m in inbox["data"]] == [m2["id"]]
    assert inbox["nextCursor"] == m2["id"]  # a full page always carries a cursor, as in Placet
    rest = (await owner.human.get("/api/v1/reviews/inbox", params={"limit": 1, "cursor": m2["id"]})).json()
    assert rest == {"data": [], "nextCursor": None}


async def test_user_message_is_sender_user(owner: Owner) -> None:
    agent = await owner.create_agent()
    resp = await owner.human.post(
        "/api/v1/messages/user", json={"channelId": agent["id"], "text": "hello agent"}
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["senderType"] == "user"
    by_key = await owner.agent.post("/api/v1/messages/user", json={"channelId": agent["id"], "text": "x"})
    assert by_key.status_code == 403
