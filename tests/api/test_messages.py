"""Agent-side API: agents, messages, idempotency, pagination, limits. Against the real stack,
except what the API refuses, which is asked of the app in this process (``api_owner``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.stack import Owner, RunningStack

APPROVAL = {"type": "approval", "payload": {}}


async def test_agent_crud_and_secret_shown_once(owner: Owner) -> None:
    created = await owner.create_agent(
        name="deployer", description="ships", webhookUrl="https://example.com/hook"
    )
    assert created["webhookSecret"].startswith("whsec_")
    agent_id = created["id"]
    got = (await owner.agent.get(f"/api/v1/agents/{agent_id}")).json()
    assert "webhookSecret" not in got
    assert got["name"] == "deployer"
    assert got["webhookUrl"] == "https://example.com/hook"
    patched = await owner.agent.patch(
        f"/api/v1/agents/{agent_id}",
        json={"name": "renamed", "webhookHeaders": {"X-Token": "s3cret"}, "webhookUrl": None},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "renamed"
    assert patched.json()["webhookHeaders"] == {"X-Token": "***"}
    assert patched.json()["webhookUrl"] is None
    listed = (await owner.agent.get("/api/v1/agents")).json()
    assert [a["id"] for a in listed] == [agent_id]
    deleted = await owner.agent.delete(f"/api/v1/agents/{agent_id}")
    assert (deleted.status_code, deleted.json()) == (200, {"deleted": True})
    assert (await owner.agent.get(f"/api/v1/agents/{agent_id}")).status_code == 404


async def test_secrets_are_not_stored_in_clear(stack: RunningStack, owner: Owner) -> None:
    created = await owner.create_agent(name="sec", webhookHeaders={"Authorization": "Bearer top-secret"})
    mongo = stack.mongo()
    try:
        raw = str(await mongo.sayso.agents.find_one({"_id": created["id"]}))
        keys = str(await mongo.sayso.api_keys.find({"owner_id": owner.user_id}).to_list())
    finally:
        await mongo.close()
    assert created["webhookSecret"] not in raw
    assert "top-secret" not in raw
    assert owner.api_key not in keys


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x", "webhookUrl": "ftp://example.com"}, "webhookUrl"),
        ({"name": "x", "webhookUrl": "not a url"}, "webhookUrl"),
        ({"name": "x", "webhookUrl": "http://hooks.example:99999/x"}, "webhookUrl"),
        ({"name": "x", "webhookUrl": "http://hooks.example:%38%30/x"}, "webhookUrl"),
        ({"name": "x", "webhookUrl": "http://hooks.example:0/x"}, "webhookUrl"),
        ({"name": "x", "webhookUrl": "http://hooks.example\\@127.0.0.1/x"}, "webhookUrl"),
        ({"name": "x", "webhookUrl": "http://hooks.example/a b"}, "webhookUrl"),
        ({"name": "x", "webhookHeaders": {"Bad Header": "v"}}, "webhookHeaders"),
        ({"name": "x", "webhookHeaders": {"X": "a\r\nInjected: 1"}}, "webhookHeaders"),
        ({"name": "x", "webhookRetrySchedule": [0]}, "webhookRetrySchedule"),
        ({"name": "x", "webhookEvents": ["everything"]}, "webhookEvents[0]"),
        # Endpoint-only types and groups are not for the agent's own URL (Placet's meaning).
        ({"name": "x", "webhookEvents": ["review:responded", "delivery:status"]}, "webhookEvents[1]"),
        ({"name": "x", "webhookEvents": ["review:*"]}, "webhookEvents[0]"),
        ({"name": "x", "tag": "t" * 65}, "tag"),
        ({"name": "x", "avatarUrl": "not a url"}, "avatarUrl"),
        ({"name": "x", "webhookFormat": "slack"}, "webhookFormat"),
        ({"name": "x", "webhookAuth": {"username": "a:b", "password": "p"}}, "webhookAuth.username"),
    ],
)
async def test_agent_validation(api_owner: Owner, body: dict[str, Any], field: str) -> None:
    resp = await api_owner.agent.post("/api/v1/agents", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["field"] == field


async def test_every_review_type_is_accepted(owner: Owner) -> None:
    agent = await owner.create_agent()
    reviews = [
        {"type": "approval", "payload": {"options": [{"id": "go", "label": "Go", "style": "success"}]}},
        {"type": "selection", "payload": {"options": [{"id": "a", "label": "A"}], "multiple": True}},
        {
            "type": "form",
            "payload": {"fields": [{"name": "n", "label": "N", "type": "number", "required": True}]},
        },
        {"type": "text-input", "payload": {"placeholder": "why?", "multiline": True}},
        {"type": "freeform", "payload": {"schema": {"any": "thing"}}},
    ]
    for review in reviews:
        msg = await owner.post_message(agent["id"], text=f"{review['type']}?", review=review)
        assert msg["review"]["type"] == review["type"]
        assert msg["review"]["status"] == "pending"
        assert msg["deliveryStatus"] == "sent"
    plain = await owner.post_message(agent["id"], text="fire and forget", status="success")
    assert plain["review"] is None
    assert plain["status"] == "success"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"text": "x"}, 422, "channelId"),
        ({"channelId": "{agent}", "text": ""}, 422, "text"),
        ({"channelId": "{agent}", "text": 5}, 422, "text"),
        ({"channelId": "{agent}", "text": "x", "status": "fatal"}, 422, "status"),
        ({"channelId": "{agent}", "text": "x", "review": {"type": "poll"}}, 422, "review.type"),
        (
            {"channelId": "{agent}", "text": "x", "review": {"type": "selection", "payload": {}}},
            422,
            "review.payload.items",
        ),
        (
            {"channelId": "{agent}", "text": "x", "review": {**APPROVAL, "expiresInSeconds": 0}},
            422,
            "review.expiresInSeconds",
        ),
        ({"channelId": "{agent}"}, 422, "text"),
        ({"channelId": "{agent}", "text": "", "attachmentIds": []}, 422, "text"),
        (
            {
                "channelId": "{agent}",
                "text": "x",
                "review": {**APPROVAL, "expiresAt": "2000-01-01T00:00:00Z"},
            },
            422,
            "review.expiresAt",
        ),
        ({"channelId": "{agent}", "text": "x", "webhookUrl": "javascript:alert(1)"}, 422, "webhookUrl"),
        ({"channelId": "{agent}", "text": "x", "iterationOf": "msg_nope"}, 422, "iterationOf"),
        ({"channelId": "{agent}", "text": "x" * 20_001}, 413, "text"),
        ({"channelId": "{agent}", "text": "x", "metadata": {"blob": "y" * 17_000}}, 413, "metadata"),
        (
            {
                "channelId": "{agent}",
                "text": "x",
                "review": {"type": "freeform", "payload": {"b": "z" * 70_000}},
            },
            413,
            "review.payload",
        ),
    ],
)
async def test_message_validation(api_owner: Owner, body: dict[str, Any], status: int, field: str) -> None:
    agent = await api_owner.create_agent()
    if body.get("channelId") == "{agent}":
        body = {**body, "channelId": agent["id"]}
    resp = await api_owner.agent.post("/api/v1/messages", json=body)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["field"] == field
    listed = await api_owner.agent.get("/api/v1/messages", params={"channel": agent["id"]})
    assert listed.json()["data"] == []


async def test_bad_bodies_get_clear_errors(api_owner: Owner) -> None:
    agent = await api_owner.create_agent()
    headers = {"content-type": "application/json"}
    bad_json = await api_owner.agent.post("/api/v1/messages", content=b'{"channelId": ', headers=headers)
    assert bad_json.status_code == 422
    assert bad_json.json()["error"]["code"] == "invalid_json"
    bad_utf8 = await api_owner.agent.post(
        "/api/v1/messages", content=b'{"text": "\xff\xfe"}', headers=headers
    )
    assert bad_utf8.status_code == 422
    assert bad_utf8.json()["error"]["code"] == "invalid_json"
    huge = await api_owner.agent.post("/api/v1/messages", content=b" " * 300_000, headers=headers)
    assert huge.status_code == 413
    assert huge.json()["error"]["code"] == "payload_too_large"
    nested = "[" * 5000 + '"x"' + "]" * 5000
    deep = await api_owner.agent.post(
        "/api/v1/messages",
        content=f'{{"channelId": "{agent["id"]}", "text": "x", "metadata": {{"n": {nested}}}}}',
        headers=headers,
    )
    assert 400 <= deep.status_code < 500, deep.text
    listed = await api_owner.agent.get("/api/v1/messages", params={"channel": agent["id"]})
    assert listed.json()["data"] == []


async def test_unknown_channel_is_404(api_owner: Owner) -> None:
    resp = await api_owner.agent.post("/api/v1/messages", json={"channelId": "agt_missing", "text": "x"})
    assert resp.status_code == 404
    assert resp.json() == {"error": {"code": "not_found", "message": "channel not found"}}


async def test_client_id_makes_create_idempotent(owner: Owner) -> None:
    agent = await owner.create_agent()
    body = {"channelId": agent["id"], "text": "once", "clientId": "job-42", "review": APPROVAL}
    first, second = await asyncio.gather(
        owner.agent.post("/api/v1/messages", json=body), owner.agent.post("/api/v1/messages", json=body)
    )
    assert {first.status_code, second.status_code} == {201}
    assert first.json()["id"] == second.json()["id"]
    header = await owner.agent.post(
        "/api/v1/messages",
        json={k: v for k, v in body.items() if k != "clientId"},
        headers={"Idempotency-Key": "job-42"},
    )
    assert header.json()["id"] == first.json()["id"]
    assert header.headers["idempotent-replayed"] == "true"
    conflict = await owner.agent.post("/api/v1/messages", json={**body, "text": "different"})
    assert conflict.status_code == 409
    assert conflict.json()["error"]["field"] == "clientId"
    listed = (await owner.agent.get("/api/v1/messages", params={"channel": agent["id"]})).json()["data"]
    assert len(listed) == 1


async def test_a_bad_idempotency_key_header_is_422_naming_it(api_owner: Owner) -> None:
    agent = await api_owner.create_agent()
    body = {"channelId": agent["id"], "text": "once"}
    too_long = await api_owner.agent.post(
        "/api/v1/messages", json=body, headers={"Idempotency-Key": "k" * 201}
    )
    assert too_long.status_code == 422
    assert too_long.json()["error"]["field"] == "idempotency-key"
    differs = await api_owner.agent.post(
        "/api/v1/messages", json={**body, "clientId": "a"}, headers={"Idempotency-Key": "b"}
    )
    assert differs.status_code == 422
    assert differs.json()["error"]["field"] == "clientId"
    longest = await api_owner.agent.post(
        "/api/v1/messages", json=body, headers={"Idempotency-Key": "k" * 200}
    )
    assert longest.status_code == 201, longest.text


async def test_pagination_search_get_delete(owner: Owner) -> None:
    agent = await owner.create_agent()
    ids = [
        (await owner.post_message(agent["id"], text=f"note {i} {'needle' if i % 3 == 0 else ''}"))["id"]
        for i in range(7)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"channel": agent["id"], "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await owner.agent.get("/api/v1/messages", params=params)).json()
        seen += [m["id"] for m in page["data"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    found = (
        await owner.agent.get("/api/v1/messages", params={"channel": agent["id"], "search": "NEEDLE"})
    ).json()
    assert [m["id"] for m in found["data"]] == [ids[6], ids[3], ids[0]]
    regex = (
        await owner.agent.get("/api/v1/messages", params={"channel": agent["id"], "search": ".*"})
    ).json()
    assert regex["data"] == []
    one = await owner.agent.get(f"/api/v1/messages/{ids[2]}", params={"channel": agent["id"]})
    assert one.json()["text"].startswith("note 2")
    deleted = await owner.agent.delete(f"/api/v1/messages/{ids[2]}", params={"channel": agent["id"]})
    assert (deleted.status_code, deleted.json()) == (200, {"deleted": True})
    assert (await owner.agent.get(f"/api/v1/messages/{ids[2]}")).status_code == 404


async def test_iterations_chain(owner: Owner) -> None:
    agent = await owner.create_agent()
    v1 = await owner.post_message(agent["id"], text="draft 1", review=APPROVAL)
    assert (v1["iteration"], v1["iterationGroupId"]) == (None, None)  # standalone, as in Placet
    early = await owner.agent.post(
        "/api/v1/messages", json={"channelId": agent["id"], "text": "too soon", "iterationOf": v1["id"]}
    )
    # The review is still pending: 400 with Placet's message, as Placet's MCP server relays it.
    assert early.status_code == 400, early.text
    assert early.json()["error"] == {
        "code": "iteration_not_allowed",
        "message": "iterationOf target must have a completed or expired review",
        "field": "iterationOf",
    }
    plain = await owner.post_message(agent["id"], text="no review")
    no_review = await owner.agent.post(
        "/api/v1/messages", json={"channelId": agent["id"], "text": "x", "iterationOf": plain["id"]}
    )
    assert no_review.status_code == 400
    answered = await owner.human.post(
        f"/api/v1/reviews/{v1['id']}/respond",
        json={"response": {"selectedOption": "reject"}, "feedback": "Add Q2 data"},
    )
    assert answered.json()["review"]["feedback"] == "Add Q2 data"
    assert answered.json()["review"]["completedAt"] is not None
    v2 = await owner.post_message(agent["id"], text="draft 2", review=APPROVAL, iterationOf=v1["id"])
    assert (v2["iteration"], v2["iterationGroupId"]) == (2, v1["id"])
    await owner.respond(v2["id"], {"selectedOption": "reject"})
    v3 = await owner.post_message(agent["id"], text="draft 3", review=APPROVAL, iterationOf=v2["id"])
    assert (v3["iteration"], v3["iterationGroupId"]) == (3, v1["id"])
    chain = (
        await owner.agent.get(f"/api/v1/messages/iterations/{v3['id']}", params={"channel": agent["id"]})
    ).json()
    assert chain["groupId"] == v1["id"]
    assert [(m["id"], m["iteration"]) for m in chain["iterations"]] == [
        (v1["id"], 1),
        (v2["id"], 2),
        (v3["id"], 3),
    ]
    assert chain["iterations"][0]["review"]["feedback"] == "Add Q2 data"
    for member in (v1, v2, v3):
        refused = await owner.agent.delete(f"/api/v1/messages/{member['id']}")
        assert refused.status_code == 400, refused.text  # as Placet
        assert refused.json()["error"]["message"] == (
            "Cannot delete a message that is part of an iteration chain with other messages"
        )
    assert (await owner.agent.get(f"/api/v1/messages/{v1['id']}")).status_code == 200


async def test_ack_sets_agent_received(owner: Owner) -> None:
    agent = await owner.create_agent()
    msg = await owner.post_message(agent["id"], review=APPROVAL)
    ack = await owner.agent.post(f"/api/v1/messages/{msg['id']}/ack", params={"channel": agent["id"]})
    assert ack.json() == {"acknowledged": True}
    got = (await owner.agent.get(f"/api/v1/messages/{msg['id']}")).json()
    assert got["deliveryStatus"] == "agent_received"
    assert got["acknowledged"] is True


async def test_status_ping(owner: Owner) -> None:
    agent = await owner.create_agent()
    resp = await owner.agent.post(
        "/api/v1/status/ping", json={"agentId": agent["id"], "status": "busy", "message": "crunching"}
    )
    assert resp.status_code == 201, resp.text  # Placet answers its ping with 201
    assert resp.json()["status"] == "busy"
    assert resp.json()["lastActiveAt"] is not None
    since = resp.json()["statusSince"]
    again = await owner.agent.post("/api/v1/status/ping", json={"agentId": agent["id"], "status": "busy"})
    assert again.json()["statusSince"] == since  # unchanged status keeps its start
    assert again.json()["statusMessage"] is None
    moved = await owner.agent.post("/api/v1/status/ping", json={"agentId": agent["id"], "status": "active"})
    assert moved.json()["statusSince"] > since
    bad = await owner.agent.post("/api/v1/status/ping", json={"agentId": agent["id"], "status": "asleep"})
    assert bad.status_code == 422


async def test_owners_never_see_each_other(stack: RunningStack, owner: Owner) -> None:
    other = await stack.new_owner()
    try:
        agent = await owner.create_agent()
        msg = await owner.post_message(agent["id"], review=APPROVAL)
        checks = [
            other.agent.get(f"/api/v1/agents/{agent['id']}"),
            other.agent.patch(f"/api/v1/agents/{agent['id']}", json={"name": "mine"}),
            other.agent.delete(f"/api/v1/agents/{agent['id']}"),
            other.agent.post("/api/v1/messages", json={"channelId": agent["id"], "text": "intrude"}),
            other.agent.get(f"/api/v1/messages/{msg['id']}"),
            other.agent.delete(f"/api/v1/messages/{msg['id']}"),
            other.agent.post(f"/api/v1/messages/{msg['id']}/ack"),
            other.agent.get(f"/api/v1/reviews/{msg['id']}"),
            other.human.post(
                f"/api/v1/reviews/{msg['id']}/respond", json={"response": {"selectedOption": "approve"}}
            ),
            other.agent.post("/api/v1/status/ping", json={"agentId": agent["id"], "status": "error"}),
            other.human.post("/api/v1/messages/user", json={"channelId": agent["id"], "text": "hi"}),
        ]
        for resp in await asyncio.gather(*checks):
            assert resp.status_code == 404, (resp.request.method, resp.request.url, resp.text)
            assert agent["id"] not in resp.text
        for path in ("/api/v1/messages", "/api/v1/reviews/pending"):
            listed = await other.agent.get(path, params={"channel": agent["id"]})
            assert listed.status_code == 404, listed.text
        assert (await other.agent.get("/api/v1/agents")).json() == []
        assert (await other.human.get("/api/v1/reviews/inbox")).json()["data"] == []
        still = (await owner.agent.get(f"/api/v1/reviews/{msg['id']}")).json()
        assert still["review"]["status"] == "pending"
    finally:
        await other.aclose()
