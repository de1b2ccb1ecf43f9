"""Edit before approve (issue #32) on a real stack: ``review.payload.edit`` checked when the review
is posted, ``response.editedArgs`` checked when it is answered (422s naming the field), and the
edited arguments in the REST read, the long-poll answer, a live SSE event and both webhook
formats, next to the actionDigest of the action as proposed."""

from __future__ import annotations

from typing import Any

from sayso_common.action_digest import action_digest
from tests.realtime.clients import sse_stream
from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "to": {"type": "string", "minLength": 1},
        "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 500},
        "items": {"type": "array", "items": {"type": "integer"}},
    },
    "required": ["to", "amount"],
    "additionalProperties": False,
}
ARGS = {"to": "alice", "amount": 120}
EDITED = {"to": "alice", "amount": 90}
PAYLOAD: dict[str, Any] = {"edit": {"args": ARGS, "schema": SCHEMA}}
METADATA = {"tool": "transfer", "args": ARGS}


async def _post(owner: Owner, channel: str, review: dict[str, Any]) -> Any:
    return await owner.agent.post(
        "/api/v1/messages", json={"channelId": channel, "text": "Pay alice?", "review": review}
    )


BAD_EDITS: list[tuple[dict[str, Any], str]] = [
    ({"type": "approval", "payload": {"edit": {"args": [1]}}}, "review.payload.edit.args"),
    (
        {"type": "approval", "payload": {"edit": {"args": {}, "schema": {"type": 5}}}},
        "review.payload.edit.schema",
    ),
    (
        {
            "type": "approval",
            "payload": {"edit": {"args": {"to": "alice", "amount": 900}, "schema": SCHEMA}},
        },
        "review.payload.edit.args.amount",
    ),
    (
        {"type": "approval", "payload": {"edit": {"args": {"amount": 9}, "schema": SCHEMA}}},
        "review.payload.edit.args.to",
    ),
    ({"type": "approval", "payload": PAYLOAD, "quorum": {"approvals": 1}}, "review.payload.edit"),
    ({"type": "text-input", "payload": PAYLOAD}, "review.payload.edit"),
]


async def test_a_bad_edit_is_refused_when_posted(owner: Owner) -> None:
    agent = await owner.create_agent()
    for review, field in BAD_EDITS:
        resp = await _post(owner, agent["id"], review)
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["field"] == field, resp.text


async def test_edited_args_are_checked_then_reach_every_reader(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    agent = await owner.create_agent(webhookUrl=receiver.url("/placet"))
    async with sse_stream(stack.url, {"x-api-key": owner.api_key}, {"channel": agent["id"]}) as live:
        msg = await owner.post_message(
            agent["id"], review={"type": "approval", "payload": PAYLOAD}, metadata=METADATA
        )
        assert msg["review"]["payload"]["edit"] == PAYLOAD["edit"]
        digest = msg["review"]["actionDigest"]
        assert digest == action_digest(PAYLOAD, METADATA)  # the action as proposed
        refusals = [
            ({"selectedOption": "reject", "editedArgs": EDITED}, "response.editedArgs"),
            ({"selectedOption": "approve", "editedArgs": {"to": "alice"}}, "response.editedArgs.amount"),
            (
                {"selectedOption": "approve", "editedArgs": {**EDITED, "amount": 0}},
                "response.editedArgs.amount",
            ),
            (
                {"selectedOption": "approve", "editedArgs": {**EDITED, "items": [1, "x"]}},
                "response.editedArgs.items[1]",
            ),
            (
                {"selectedOption": "approve", "editedArgs": {**EDITED, "memo": "x"}},
                "response.editedArgs.memo",
            ),
            ({"selectedOption": "approve", "editedArgs": "amount=90"}, "response.editedArgs"),
        ]
        for response, field in refusals:
            resp = await owner.respond(msg["id"], response)
            assert resp.status_code == 422, resp.text
            assert resp.json()["error"]["field"] == field, resp.text
        read = (await owner.agent.get(f"/api/v1/reviews/{msg['id']}")).json()
        assert read["review"]["status"] == "pending"
        answer = {"selectedOption": "approve", "comment": "less", "editedArgs": EDITED}
        ok = await owner.respond(msg["id"], answer)
        assert ok.status_code == 200, ok.text
        assert ok.json()["review"]["response"] == answer
        waited = await owner.agent.get(f"/api/v1/reviews/{msg['id']}/wait", params={"channel": agent["id"]})
        assert waited.json()["status"] == "completed"
        assert waited.json()["message"]["review"]["response"]["editedArgs"] == EDITED
        assert waited.json()["message"]["review"]["actionDigest"] == digest
        event = await live.wait_for(
            lambda e: e.name == "review:responded" and e.payload["id"] == msg["id"], what="review:responded"
        )
        assert event.payload["review"]["response"]["editedArgs"] == EDITED
    [hook] = await receiver.wait_for("/placet")
    assert hook.json()["response"] == answer
    assert hook.json()["actionDigest"] == digest


async def test_processa_receivers_get_edited_args(owner: Owner, receiver: Receiver) -> None:
    agent = await owner.create_agent(webhookUrl=receiver.url("/processa"), webhookFormat="processa")
    msg = await owner.post_message(agent["id"], review={"type": "approval", "payload": PAYLOAD})
    assert (
        await owner.respond(msg["id"], {"selectedOption": "approve", "editedArgs": EDITED})
    ).status_code == 200
    [draft] = await receiver.wait_for("/processa")
    assert draft.json()["event"] == "draft.approved"
    assert draft.json()["editedArgs"] == EDITED


async def test_a_review_without_edit_is_unchanged(owner: Owner) -> None:
    """Placet compatibility: no edit offered, no editedArgs accepted, and the answer is as before."""
    agent = await owner.create_agent()
    msg = await owner.post_message(agent["id"], review={"type": "approval", "payload": {}})
    assert "edit" not in msg["review"]["payload"]
    resp = await owner.respond(msg["id"], {"selectedOption": "approve", "editedArgs": ARGS})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["field"] == "response.editedArgs"
    ok = await owner.respond(msg["id"], {"selectedOption": "approve"})
    assert ok.json()["review"]["response"] == {"selectedOption": "approve"}
