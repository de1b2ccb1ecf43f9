"""``review.actionDigest`` on a real stack: computed (or taken as the agent gives it) at creation,
and the same in REST reads, the long-poll answer, live events (SSE and socket) and both webhook
formats, where it is the last key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sayso_common.action_digest import action_digest
from tests.realtime.clients import Received, socket_client, sse_stream
from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack

APPROVE = {"selectedOption": "approve"}
PAYLOAD: dict[str, Any] = {"options": [{"id": "approve", "label": "Überweisen"}]}
REVIEW: dict[str, Any] = {"type": "approval", "payload": PAYLOAD}
METADATA = {"tool": "transfer", "args": {"to": "alice", "amount": 120}, "risk": "high"}
SUPPLIED = "ab" * 32


def is_event(name: str, message_id: str) -> Callable[[Received], bool]:
    return lambda event: event.name == name and event.payload["id"] == message_id


async def test_the_digest_is_on_every_read_of_the_review(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    agent = await owner.create_agent(webhookUrl=receiver.url("/placet"))
    computed = action_digest(PAYLOAD, METADATA)
    async with (
        sse_stream(stack.url, {"x-api-key": owner.api_key}, {"channel": agent["id"]}) as live,
        socket_client(stack.url, {"token": owner.token, "channels": [agent["id"]]}) as (_, sockets),
    ):
        msg = await owner.post_message(agent["id"], review=REVIEW, metadata=METADATA)
        supplied = await owner.post_message(
            agent["id"],
            review={**REVIEW, "actionDigest": SUPPLIED},
            metadata=METADATA,
            webhookUrl=receiver.url("/processa"),
            webhookFormat="processa",
        )
        assert msg["review"]["actionDigest"] == computed
        assert supplied["review"]["actionDigest"] == SUPPLIED  # stored as the agent gave it
        for message, digest in ((msg, computed), (supplied, SUPPLIED)):
            read = (await owner.agent.get(f"/api/v1/reviews/{message['id']}")).json()
            assert read["review"]["actionDigest"] == digest
            assert (await owner.respond(message["id"], APPROVE)).status_code == 200
            waited = await owner.agent.get(
                f"/api/v1/reviews/{message['id']}/wait", params={"channel": agent["id"]}
            )
            assert waited.json()["status"] == "completed"
            assert waited.json()["message"]["review"]["actionDigest"] == digest
            for inbox in (live, sockets):
                for name in ("message:created", "review:responded"):
                    event = await inbox.wait_for(is_event(name, message["id"]), what=name)
                    assert event.payload["review"]["actionDigest"] == digest, name
    [hook] = await receiver.wait_for("/placet")
    assert (hook.json()["message_id"], hook.json()["actionDigest"]) == (msg["id"], computed)
    assert list(hook.json())[-1] == "actionDigest"  # Placet's keys first, in their order
    [draft] = await receiver.wait_for("/processa")
    assert draft.json()["event"] == "draft.approved"
    assert draft.json()["actionDigest"] == SUPPLIED
    assert list(draft.json())[-1] == "actionDigest"


async def test_a_malformed_digest_is_refused(owner: Owner) -> None:
    agent = await owner.create_agent()
    for bad in ("AB" * 32, "ab" * 31, "xy" * 32, 42):
        resp = await owner.agent.post(
            "/api/v1/messages",
            json={"channelId": agent["id"], "text": "hi", "review": {**REVIEW, "actionDigest": bad}},
        )
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["field"] == "review.actionDigest", resp.text
