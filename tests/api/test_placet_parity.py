"""Placet Agent API v1 parity: what a client written for Placet sends and expects, against the
real stack. (The flows of Placet's own MCP server are replayed in tests/test_placet_mcp_flows.py.)"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from tests.realtime.clients import sse_stream
from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack

APPROVAL = {"type": "approval", "payload": {}}
SECRET_FORM = {
    "type": "form",
    "payload": {
        "fields": [
            {"name": "user", "type": "text", "label": "User", "required": True},
            {"name": "token", "type": "password", "label": "Token", "required": True},
        ]
    },
}


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_unknown_fields_are_ignored_and_nothing_is_invented(owner: Owner) -> None:
    agent = await owner.create_agent(futureField=1, avatarUrl="https://img.example/a.png", tag="ops")
    assert (agent["avatarUrl"], agent["tag"], agent["status"]) == (
        "https://img.example/a.png",
        "ops",
        "offline",
    )
    resp = await owner.agent.post(
        "/api/v1/messages",
        json={"channelId": agent["id"], "text": "hi", "streamStartedAt": "x", "somethingNew": {"a": 1}},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] is None  # not invented when absent
    assert resp.json()["senderId"] == agent["id"]
    only_review = await owner.agent.post(
        "/api/v1/messages", json={"channelId": agent["id"], "review": APPROVAL}
    )
    assert only_review.status_code == 201, only_review.text
    assert only_review.json()["text"] is None
    only_status = await owner.agent.post(
        "/api/v1/messages", json={"channelId": agent["id"], "status": "error"}
    )
    assert only_status.status_code == 201
    empty = await owner.agent.post("/api/v1/messages", json={"channelId": agent["id"], "metadata": {"a": 1}})
    assert empty.status_code == 422
    assert empty.json()["error"]["field"] == "text"
    assert "attachmentIds" in empty.json()["error"]["message"]


async def test_deadlines_follow_placet(owner: Owner) -> None:
    agent = await owner.create_agent()

    async def deadline(review: dict[str, Any]) -> timedelta:
        msg = await owner.post_message(agent["id"], review={**APPROVAL, **review})
        return _at(msg["review"]["expiresAt"]) - _at(msg["createdAt"])

    assert abs(await deadline({}) - timedelta(hours=24)) < timedelta(seconds=2)
    # Longer than the 36 h maximum is capped, not refused.
    assert abs(await deadline({"expiresInSeconds": 10**9}) - timedelta(hours=36)) < timedelta(seconds=2)
    far = (datetime.now().astimezone() + timedelta(days=30)).isoformat()
    assert abs(await deadline({"expiresAt": far}) - timedelta(hours=36)) < timedelta(seconds=2)
    # expiresInSeconds wins over expiresAt.
    soon = (datetime.now().astimezone() + timedelta(hours=5)).isoformat()
    assert abs(
        await deadline({"expiresAt": soon, "expiresInSeconds": 600}) - timedelta(seconds=600)
    ) < timedelta(seconds=2)


async def test_freeform_plugin_reaches_metadata(owner: Owner) -> None:
    agent = await owner.create_agent()
    msg = await owner.post_message(
        agent["id"],
        metadata={"runId": "r1"},
        review={
            "type": "freeform",
            "payload": {"plugin": "kroki-diagram", "type": "mermaid", "source": "graph TD"},
        },
    )
    assert msg["metadata"] == {"runId": "r1", "plugin": "kroki-diagram"}
    assert msg["review"]["payload"]["source"] == "graph TD"
    answered = await owner.respond(msg["id"], [1, 2])
    assert answered.status_code == 422  # a response is always a JSON object, as Placet's
    assert (await owner.respond(msg["id"], {"any": [1, {"x": None}]})).status_code == 200


async def test_list_limit_is_capped_and_full_pages_carry_a_cursor(owner: Owner) -> None:
    agent = await owner.create_agent()
    docs = [{"channelId": agent["id"], "text": f"n{i}"} for i in range(101)]
    for chunk in range(0, 101, 20):
        await asyncio.gather(
            *(owner.agent.post("/api/v1/messages", json=d) for d in docs[chunk : chunk + 20])
        )
    page = (await owner.agent.get("/api/v1/messages", params={"channel": agent["id"], "limit": 500})).json()
    assert len(page["data"]) == 100
    assert page["nextCursor"] == page["data"][-1]["id"]
    rest = (
        await owner.agent.get(
            "/api/v1/messages", params={"channel": agent["id"], "limit": 500, "cursor": page["nextCursor"]}
        )
    ).json()
    assert (len(rest["data"]), rest["nextCursor"]) == (1, None)


async def test_pending_reviews_is_a_bare_array_newest_first(owner: Owner) -> None:
    agent = await owner.create_agent()
    first = await owner.post_message(agent["id"], review=APPROVAL)
    second = await owner.post_message(agent["id"], review=APPROVAL)
    await owner.post_message(agent["id"], text="no review")
    pending = (await owner.agent.get("/api/v1/reviews/pending", params={"channel": agent["id"]})).json()
    assert [m["id"] for m in pending] == [second["id"], first["id"]]


async def test_dismiss_feedback_and_modified_files(owner: Owner, receiver: Receiver) -> None:
    agent = await owner.create_agent(webhookUrl=receiver.url("/placet"))
    review = {"type": "text-input", "payload": {"placeholder": "why?", "dismissLabel": "Skip"}}
    msg = await owner.post_message(agent["id"], review=review)
    answer = await owner.human.post(
        f"/api/v1/reviews/{msg['id']}/respond",
        json={"response": {"_dismissed": True}, "feedback": "not now", "modifiedFileIds": {"att_1": "att_2"}},
    )
    assert answer.status_code == 200, answer.text
    got = answer.json()["review"]
    assert (got["status"], got["response"], got["feedback"]) == ("completed", {"_dismissed": True}, "not now")
    assert got["modifiedFileIds"] == {"att_1": "att_2"}
    assert got["completedAt"] == got["respondedAt"]
    no_dismiss = await owner.post_message(agent["id"], review={"type": "text-input", "payload": {}})
    refused = await owner.respond(no_dismiss["id"], {"_dismissed": True})
    assert refused.status_code == 422  # only a review with a dismissLabel can be dismissed
    (hook,) = await receiver.wait_for("/placet")
    assert hook.json()["response"] == {"_dismissed": True}


async def test_password_answers_are_hidden_on_screens_and_delivered_to_the_agent(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    agent = await owner.create_agent(webhookUrl=receiver.url("/secret"))
    msg = await owner.post_message(agent["id"], review=SECRET_FORM)
    async with sse_stream(stack.url, {"x-api-key": owner.api_key}) as live:
        answered = await owner.respond(msg["id"], {"user": "ops", "token": "hunter2"})
        assert answered.status_code == 200
        assert answered.json()["review"]["response"] == {"user": "ops", "token": "***REDACTED***"}
        pushed = await live.wait_for(lambda i: i.name == "review:responded" and i.payload["id"] == msg["id"])
        assert pushed.payload["review"]["response"]["token"] == "***REDACTED***"
    for path in (f"/api/v1/messages/{msg['id']}", f"/api/v1/reviews/{msg['id']}"):
        assert (await owner.agent.get(path)).json()["review"]["response"]["token"] == "***REDACTED***"
    listed = (await owner.agent.get("/api/v1/messages", params={"channel": agent["id"]})).json()["data"]
    assert listed[0]["review"]["response"]["token"] == "***REDACTED***"
    assert "hunter2" not in (await owner.human.get("/api/v1/reviews/inbox")).text
    # The agent itself gets the secret: on its webhook and on the long-poll, as with Placet.
    (hook,) = await receiver.wait_for("/secret")
    assert hook.json()["response"]["token"] == "hunter2"
    waited = await owner.agent.get(f"/api/v1/reviews/{msg['id']}/wait", params={"channel": agent["id"]})
    assert waited.json()["message"]["review"]["response"]["token"] == "hunter2"


async def test_agent_self_service_webhook_and_commands(stack: RunningStack, owner: Owner) -> None:
    agent = await owner.create_agent()
    channel = agent["id"]
    body = {
        "channelId": channel,
        "url": "https://agent.example/hook",
        "headers": {"X-Team": "ops"},
        "auth": {"username": "bot", "password": "pa55word"},
        "isSubagent": False,  # a Placet field Sayso does not have: ignored
    }
    resp = await owner.agent.post("/api/v1/agents/setWebhook", json=body)
    assert resp.status_code == 200, resp.text
    got = resp.json()
    assert got["webhookUrl"] == "https://agent.example/hook"
    assert got["webhookHeaders"] == {"X-Team": "***"}
    assert got["webhookAuth"] == {"username": "bot", "password": "***"}
    async with stack.mongo() as client:
        stored = await client.sayso.agents.find_one({"_id": channel})
    assert stored is not None
    assert "pa55word" not in str(stored)
    cmds = {
        "commands": [
            {"command": "/deploy", "description": "Ship it", "acceptsArgs": True, "argHint": "<version>"},
            {"command": "/status", "description": "How are things"},
        ]
    }
    put = await owner.agent.put(f"/api/v1/agents/{channel}/commands", json=cmds)
    assert put.status_code == 200, put.text
    shown = [{k: v for k, v in c.items() if v is not None} for c in put.json()["commands"]]
    assert shown == cmds["commands"]
    dup = await owner.agent.put(
        f"/api/v1/agents/{channel}/commands", json={"commands": [cmds["commands"][1]] * 2}
    )
    assert dup.status_code == 422
    # A bad item is named in the one field-path format (list positions in brackets).
    bad = await owner.agent.put(
        f"/api/v1/agents/{channel}/commands", json={"commands": [cmds["commands"][0], {"command": 5}]}
    )
    assert bad.status_code == 422, bad.text
    assert bad.json()["error"]["field"] == "commands[1].command"
    cleared = await owner.agent.post("/api/v1/agents/deleteWebhook", json={"channelId": channel})
    assert cleared.status_code == 200
    assert (
        cleared.json()["webhookUrl"],
        cleared.json()["webhookAuth"],
        cleared.json()["webhookHeaders"],
    ) == (
        None,
        None,
        {},
    )
    bad = await owner.agent.post("/api/v1/agents/setWebhook", json={"channelId": channel, "url": "ftp://x"})
    assert (bad.status_code, bad.json()["error"]["field"]) == (422, "url")
    listed = (await owner.agent.get("/api/v1/agents")).json()
    assert isinstance(listed, list)
    assert [c["command"] for c in listed[0]["commands"]] == [
        "/deploy",
        "/status",
    ]


async def test_other_owners_cannot_use_self_service(stack: RunningStack, owner: Owner) -> None:
    agent = await owner.create_agent()
    other = await stack.new_owner()
    try:
        calls = [
            other.agent.post(
                "/api/v1/agents/setWebhook", json={"channelId": agent["id"], "url": "https://x.example/"}
            ),
            other.agent.post("/api/v1/agents/deleteWebhook", json={"channelId": agent["id"]}),
            other.agent.put(f"/api/v1/agents/{agent['id']}/commands", json={"commands": []}),
            other.agent.patch("/api/v1/messages/streams/s1", json={"channelId": agent["id"], "text": "x"}),
        ]
        for resp in await asyncio.gather(*calls):
            assert resp.status_code == 404, (resp.request.url, resp.text)
    finally:
        await other.aclose()


async def test_streamed_message_grows_live_and_closes(stack: RunningStack, owner: Owner) -> None:
    agent = await owner.create_agent()
    channel = agent["id"]
    async with sse_stream(stack.url, {"x-api-key": owner.api_key}) as live:
        draft = await owner.post_message(channel, text="Thinking", streamId="turn-1")
        assert draft["streamState"] == "streaming"
        again = await owner.agent.post(
            "/api/v1/messages", json={"channelId": channel, "text": "ignored", "streamId": "turn-1"}
        )
        assert again.json()["id"] == draft["id"]  # the first POST of a stream is idempotent
        assert again.json()["text"] == "Thinking"
        step = await owner.agent.post(
            "/api/v1/messages/streams/turn-1/status",
            json={"channelId": channel, "text": "searching the docs", "toolHint": True},
        )
        assert step.status_code == 201, step.text
        assert (step.json()["index"], step.json()["toolHint"]) == (0, True)
        grown = await owner.agent.patch(
            "/api/v1/messages/streams/turn-1", json={"channelId": channel, "text": "Thinking about it"}
        )
        assert grown.status_code == 200, grown.text
        assert grown.json()["statusEvents"][0]["text"] == "searching the docs"
        await live.wait_for(
            lambda i: i.name == "message:updated" and i.payload["text"] == "Thinking about it", what="update"
        )
        done = await owner.agent.patch(
            "/api/v1/messages/streams/turn-1",
            json={"channelId": channel, "text": "Thinking about it: done.", "complete": True},
        )
        assert done.json()["streamState"] == "complete"
        final = await live.wait_for(
            lambda i: i.name == "message:updated" and i.payload["streamState"] == "complete", what="final"
        )
        assert final.payload["text"] == "Thinking about it: done."
    late = await owner.agent.patch(
        "/api/v1/messages/streams/turn-1", json={"channelId": channel, "text": "more"}
    )
    assert late.status_code == 409
    assert (await owner.agent.get(f"/api/v1/messages/{draft['id']}")).json()[
        "text"
    ] == "Thinking about it: done."
    missing = await owner.agent.patch(
        "/api/v1/messages/streams/nope", json={"channelId": channel, "text": "x"}
    )
    assert missing.status_code == 404


async def test_retried_message_with_attachments_is_one_message(owner: Owner) -> None:
    agent = await owner.create_agent()
    body = {
        "channelId": agent["id"],
        "text": "report attached",
        "clientId": "report-1",
        "textAttachments": [{"content": "# Report\n\nall good", "filename": "report.md"}],
    }
    first = await owner.agent.post("/api/v1/messages", json=body)
    assert first.status_code == 201, first.text
    again = await owner.agent.post("/api/v1/messages", json=body)
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    files = (await owner.agent.get("/api/v1/files", params={"channel": agent["id"]})).json()
    assert len(files) == 1  # the retry stored no second copy of the text
    assert first.json()["attachments"][0]["textContent"] == "# Report\n\nall good"
