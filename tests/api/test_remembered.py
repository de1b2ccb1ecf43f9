"""Remembered approvals on the real stack (issue #29 item 4): an approving answer with ``remember``
answers the same action again (same channel, ``metadata.tool``, arguments digest and, for scope
run, ``metadata.runId``) until it expires or is revoked, never a different action nor a quorum
review; the refusals name their field; who may list and revoke; the ``approval.remembered`` and
``approval.revoked`` events; a second API replica honouring a remember and a revoke made on the
first (change stream)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

import sayso
import sayso.calls
from tests.conftest import Infra
from tests.realtime.clients import sse_stream
from tests.support.private import beside
from tests.support.stack import Owner, RunningStack, eventually

APPROVE = {"selectedOption": "approve"}
HOUR = {"forSeconds": 3600, "scope": "channel"}
ARGS = {"service": "web", "replicas": 3, "env": {"region": "eu", "zone": "b"}}


@pytest.fixture(scope="module")
async def team(stack: RunningStack) -> AsyncIterator[list[Owner]]:
    """An owner, a member of the owner's channels, and an outsider."""
    async with stack.new_owners(3) as people:
        yield people


async def shared_agent(team: list[Owner]) -> dict[str, Any]:
    owner, member, _ = team
    agent = await owner.create_agent()
    added = await owner.human.post(f"/api/v1/agents/{agent['id']}/members", json={"email": member.email})
    assert added.status_code == 201, added.text
    return agent


async def call(owner: Owner, channel: str, args: Any = ARGS, **extra: Any) -> dict[str, Any]:
    """A tool call asking for approval, as require_approval sends it."""
    review = {"type": "approval", **extra.pop("review", {})}
    metadata = {"tool": "deploy", "args": args, **extra.pop("metadata", {})}
    return await owner.post_message(channel, text="Deploy?", review=review, metadata=metadata, **extra)


async def answer(who: Owner, message_id: str, remember: Any, response: Any = APPROVE) -> httpx.Response:
    body = {"response": response, "remember": remember}
    return await who.human.post(f"/api/v1/reviews/{message_id}/respond", json=body)


async def remembered(who: httpx.AsyncClient, channel: str) -> list[dict[str, Any]]:
    resp = await who.get(f"/api/v1/agents/{channel}/remembered")
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


def digest(args: Any) -> str:
    canonical = json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def test_an_answer_remembers_and_answers_the_same_action(
    stack: RunningStack, team: list[Owner]
) -> None:
    owner = team[0]
    agent = await owner.create_agent()
    first = await call(owner, agent["id"])
    answered = await answer(owner, first["id"], HOUR)
    assert answered.status_code == 200, answered.text
    assert (answered.json()["review"]["status"], answered.json()["review"]["respondedBy"]) == (
        "completed",
        owner.user_id,
    )
    [entry] = await remembered(owner.agent, agent["id"])
    assert entry["id"].startswith("rem_")
    assert {
        k: entry[k] for k in ("channelId", "tool", "argsDigest", "scope", "runId", "reviewId", "createdBy")
    } == {
        "channelId": agent["id"],
        "tool": "deploy",
        "argsDigest": digest(ARGS),
        "scope": "channel",
        "runId": None,
        "reviewId": first["id"],
        "createdBy": owner.user_id,
    }
    lasts = datetime.fromisoformat(entry["expiresAt"]) - datetime.fromisoformat(entry["createdAt"])
    assert lasts == timedelta(seconds=3600)
    # The same action again (its arguments in another key order: the digest is canonical).
    again = await call(
        owner, agent["id"], {"env": {"zone": "b", "region": "eu"}, "replicas": 3, "service": "web"}
    )
    review = again["review"]
    assert (review["status"], review["response"], review["respondedBy"]) == ("completed", APPROVE, None)
    assert review["decidedBy"] == {
        "remembered": entry["id"],
        "grantedBy": owner.user_id,
        "review": first["id"],
    }
    # Not another action, not a quorum review, not another channel.
    assert (await call(owner, agent["id"], {**ARGS, "replicas": 30}))["review"]["status"] == "pending"
    assert (await call(owner, agent["id"], metadata={"tool": "restart"}))["review"]["status"] == "pending"
    quorum = await call(owner, agent["id"], review={"quorum": {"approvals": 2}})
    assert quorum["review"]["status"] == "pending"
    other = await owner.create_agent()
    assert (await call(owner, other["id"]))["review"]["status"] == "pending"
    # A rule that rejects still rejects: the owner's word holds over a remembered approval.
    rules = [{"match": {"metadata.args.replicas": 3}, "action": "reject", "response": {"comment": "frozen"}}]
    saved = await owner.agent.put(f"/api/v1/agents/{agent['id']}/policy", json={"rules": rules})
    assert saved.status_code == 200, saved.text
    frozen = await call(owner, agent["id"])
    assert frozen["review"]["response"]["selectedOption"] == "reject"
    assert "policy" in frozen["review"]["decidedBy"]
    # An ask rule does not stop it: a person approved exactly this.
    await owner.agent.put(
        f"/api/v1/agents/{agent['id']}/policy", json={"rules": [{"match": {}, "action": "ask"}]}
    )
    assert (await call(owner, agent["id"]))["review"]["decidedBy"]["remembered"] == entry["id"]
    # The event the audit log records, and the auto-answer's ordinary review.responded.
    mongo = stack.mongo()
    try:
        db = mongo[stack.mongo_db]

        async def event() -> dict[str, Any] | None:
            return await db.events.find_one(
                {"type": "approval.remembered", "data.remembered_id": entry["id"]}
            )

        found = await eventually(event, what="approval.remembered published")
        assert {k: v for k, v in found["data"].items() if k != "expires_at"} == {
            "channel_id": agent["id"],
            "remembered_id": entry["id"],
            "tool": "deploy",
            "args_digest": digest(ARGS),
            "scope": "channel",
            "run_id": None,
            "actor": owner.user_id,
        }

        async def responded() -> dict[str, Any] | None:
            return await db.events.find_one({"type": "review.responded", "data.message.id": again["id"]})

        decided = await eventually(responded, what="the auto-answer's review.responded")
        assert decided["data"]["message"]["review"]["decidedBy"]["remembered"] == entry["id"]
        ttl = (await db.remembered_approvals.index_information())["remembered_ttl"]
        assert (ttl["key"], ttl["expireAfterSeconds"]) == ([("expires_at", 1)], 86400)
    finally:
        await mongo.close()


async def test_scope_run_answers_only_the_same_run(team: list[Owner]) -> None:
    owner = team[0]
    agent = await owner.create_agent()
    first = await call(owner, agent["id"], metadata={"runId": "run-1"})
    answered = await answer(owner, first["id"], {"forSeconds": 600, "scope": "run"})
    assert answered.status_code == 200, answered.text
    [entry] = await remembered(owner.agent, agent["id"])
    assert (entry["scope"], entry["runId"]) == ("run", "run-1")
    same = await call(owner, agent["id"], metadata={"runId": "run-1"})
    assert same["review"]["decidedBy"]["remembered"] == entry["id"]
    assert (await call(owner, agent["id"], metadata={"runId": "run-2"}))["review"]["status"] == "pending"
    assert (await call(owner, agent["id"]))["review"]["status"] == "pending"
    # A message without a runId may name its run in the answer.
    bare = await call(owner, agent["id"], {"x": 1})
    named = await answer(owner, bare["id"], {"forSeconds": 600, "scope": "run", "runId": "run-9"})
    assert named.status_code == 200, named.text
    assert (await call(owner, agent["id"], {"x": 1}, metadata={"runId": "run-9"}))["review"][
        "status"
    ] == "completed"


@pytest.mark.parametrize(
    ("remember", "response", "extra", "field"),
    [
        ({"forSeconds": 59, "scope": "channel"}, APPROVE, {}, "remember.forSeconds"),
        ({"forSeconds": 7 * 86400 + 1, "scope": "channel"}, APPROVE, {}, "remember.forSeconds"),
        ({"forSeconds": 600, "scope": "forever"}, APPROVE, {}, "remember.scope"),
        ({"forSeconds": 600}, APPROVE, {}, "remember.scope"),
        ({"forSeconds": 600, "scope": "channel", "ttl": 1}, APPROVE, {}, "remember.ttl"),
        ({"forSeconds": 600, "scope": "channel", "runId": "r"}, APPROVE, {}, "remember.runId"),
        ({"forSeconds": 600, "scope": "run"}, APPROVE, {}, "remember.runId"),
        (
            {"forSeconds": 600, "scope": "run", "runId": "b"},
            APPROVE,
            {"metadata": {"runId": "a"}},
            "remember.runId",
        ),
        (HOUR, {"selectedOption": "reject"}, {}, "remember"),
        (HOUR, APPROVE, {"metadata": {"tool": None}}, "remember"),
        (HOUR, APPROVE, {"review": {"quorum": {"approvals": 1}}}, "remember"),
        # An edited answer approved other arguments than those an entry would bind.
        (
            HOUR,
            {**APPROVE, "editedArgs": {**ARGS, "replicas": 1}},
            {"review": {"payload": {"edit": {"args": ARGS}}}},
            "remember",
        ),
        # Arguments offered for editing but not sent as metadata.args: nothing to bind to.
        (HOUR, APPROVE, {"review": {"payload": {"edit": {"args": {"service": "db"}}}}}, "remember"),
    ],
)
async def test_a_bad_remember_is_refused_and_answers_nothing(
    team: list[Owner], remember: Any, response: Any, extra: dict[str, Any], field: str
) -> None:
    owner = team[0]
    agent = await owner.create_agent()
    message = await call(owner, agent["id"], **extra)
    refused = await answer(owner, message["id"], remember, response)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["field"] == field
    assert (await owner.agent.get(f"/api/v1/reviews/{message['id']}")).json()["review"]["status"] == "pending"
    assert await remembered(owner.agent, agent["id"]) == []


async def test_a_text_review_is_never_remembered(team: list[Owner]) -> None:
    owner = team[0]
    agent = await owner.create_agent()
    message = await owner.post_message(
        agent["id"], review={"type": "text-input"}, metadata={"tool": "deploy"}
    )
    refused = await answer(owner, message["id"], HOUR, {"text": "yes"})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["field"] == "remember"


async def test_an_expired_approval_answers_nothing(stack: RunningStack, team: list[Owner]) -> None:
    """forSeconds is at least 60: expiry is simulated by moving expires_at into the past in
    MongoDB (the change it makes there also tells every API process to read again)."""
    owner = team[0]
    agent = await owner.create_agent()
    first = await call(owner, agent["id"])
    assert (await answer(owner, first["id"], {"forSeconds": 60, "scope": "channel"})).status_code == 200
    [entry] = await remembered(owner.agent, agent["id"])
    assert (await call(owner, agent["id"]))["review"]["status"] == "completed"
    mongo = stack.mongo()
    try:
        past = datetime.now(UTC) - timedelta(seconds=1)
        await mongo[stack.mongo_db].remembered_approvals.update_one(
            {"_id": entry["id"]}, {"$set": {"expires_at": past}}
        )
    finally:
        await mongo.close()
    assert await remembered(owner.agent, agent["id"]) == []
    assert (await call(owner, agent["id"]))["review"]["status"] == "pending"


async def test_revoking(stack: RunningStack, team: list[Owner]) -> None:
    owner, member, outsider = team
    agent = await shared_agent(team)
    channel = agent["id"]
    mine = await call(owner, channel)
    assert (await answer(owner, mine["id"], HOUR)).status_code == 200
    theirs = await call(owner, channel, {"other": True})
    assert (await answer(member, theirs["id"], HOUR)).status_code == 200
    listed = await remembered(member.human, channel)
    assert [e["createdBy"] for e in listed] == [member.user_id, owner.user_id]
    by_member, by_owner = (e["id"] for e in listed)
    path = f"/api/v1/agents/{channel}/remembered"
    # Outsiders see nothing; a member revokes only their own.
    for who in (outsider.human, outsider.agent, member.agent):
        assert (await who.get(path)).status_code == 404
        assert (await who.delete(f"{path}/{by_owner}")).status_code == 404
    assert (await member.human.delete(f"{path}/{by_owner}")).status_code == 404
    gone = await member.human.delete(f"{path}/{by_member}")
    assert gone.status_code == 200, gone.text
    assert (gone.json()["revokedBy"], gone.json()["revokedAt"] is not None) == (member.user_id, True)
    # The owner revokes any, by key too.
    revoked = await owner.agent.delete(f"{path}/{by_owner}")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revokedBy"].startswith("key:")
    assert (await owner.agent.delete(f"{path}/{by_owner}")).status_code == 404
    assert await remembered(owner.agent, channel) == []
    assert (await call(owner, channel))["review"]["status"] == "pending"
    assert (await call(owner, channel, {"other": True}))["review"]["status"] == "pending"
    mongo = stack.mongo()
    try:
        db = mongo[stack.mongo_db]

        async def events() -> list[dict[str, Any]] | None:
            found = await db.events.find({"type": "approval.revoked", "channel_id": channel}).to_list()
            return found if len(found) == 2 else None

        actors = sorted(e["data"]["actor"] for e in await eventually(events, what="two approval.revoked"))
        assert actors[0].startswith("key:")
        assert actors[1] == member.user_id
    finally:
        await mongo.close()


async def test_a_second_replica_honours_a_remember_and_a_revoke(
    stack: RunningStack, infra: Infra, team: list[Owner]
) -> None:
    owner = team[0]
    agent = await owner.create_agent()
    with beside(stack, infra, "api", "api-remembered-2") as proc:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{proc.port}", headers={"x-api-key": owner.api_key}, timeout=30
        ) as second:

            async def status() -> str:
                body = {"channelId": agent["id"], "text": "Deploy?", "review": {"type": "approval"}}
                body["metadata"] = {"tool": "deploy", "args": ARGS}
                resp = await second.post("/api/v1/messages", json=body)
                assert resp.status_code == 201, resp.text
                state: str = resp.json()["review"]["status"]
                return state

            # The second replica reads the channel (nothing remembered) and keeps that.
            assert await status() == "pending"
            first = await call(owner, agent["id"])
            assert (await answer(owner, first["id"], HOUR)).status_code == 200

            async def approved() -> bool:
                return await status() == "completed"

            await eventually(approved, what="the second replica answers with the remembered approval")
            [entry] = await remembered(owner.agent, agent["id"])
            assert (
                await owner.agent.delete(f"/api/v1/agents/{agent['id']}/remembered/{entry['id']}")
            ).status_code == 200

            async def asked() -> bool:
                return await status() == "pending"

            await eventually(asked, what="the second replica sees the revoke")


async def test_the_sdk_remembers_lists_and_revokes(stack: RunningStack, team: list[Owner]) -> None:
    owner = team[0]
    async with (
        sayso.AsyncClient(stack.url, owner.api_key) as agent_client,
        sayso.AsyncClient(stack.url, owner.token) as person,
    ):
        agent = await agent_client.create_agent("sdk-remember")
        metadata = {"tool": "deploy", "args": ARGS, "runId": "run-7"}
        first = await agent_client.send_message(
            agent.id, "Deploy?", review={"type": "approval"}, metadata=metadata
        )
        answered = await person.respond(
            first.id, APPROVE, remember=sayso.calls.remember_body(600, "run", "run-7")
        )
        assert answered.review is not None
        assert answered.review.responded_by == owner.user_id
        [entry] = await person.list_remembered(agent.id)
        assert (entry.tool, entry.scope, entry.run_id, entry.args_digest) == (
            "deploy",
            "run",
            "run-7",
            digest(ARGS),
        )
        again = await agent_client.send_message(
            agent.id, "Deploy?", review={"type": "approval"}, metadata=metadata
        )
        assert again.review is not None
        assert again.review.decided_by is not None
        assert (again.review.decided_by.remembered, again.review.decided_by.granted_by) == (
            entry.id,
            owner.user_id,
        )
        assert again.review.decided_by.policy is None
        revoked = await agent_client.revoke_remembered(agent.id, entry.id)
        assert revoked.revoked_at is not None
        assert await agent_client.list_remembered(agent.id) == []
        # A number of seconds is the whole channel's remember.
        other = await agent_client.send_message(
            agent.id, "Deploy?", review={"type": "approval"}, metadata=metadata
        )
        await person.respond(other.id, APPROVE, remember=3600)
        [channel_wide] = await agent_client.list_remembered(agent.id)
        assert (channel_wide.scope, channel_wide.run_id) == ("channel", None)


async def test_live_clients_see_a_remember_and_a_revoke(stack: RunningStack, team: list[Owner]) -> None:
    owner, member, _ = team
    agent = await shared_agent(team)
    async with sse_stream(stack.url, {"Authorization": f"Bearer {member.token}"}) as live:
        first = await call(owner, agent["id"])
        assert (await answer(owner, first["id"], HOUR)).status_code == 200
        made = await live.wait_for(
            lambda i: i.name == "approval:remembered" and i.payload["channelId"] == agent["id"]
        )
        entry_id = made.payload["rememberedId"]
        assert {k: made.payload[k] for k in ("tool", "argsDigest", "scope", "runId", "actor")} == {
            "tool": "deploy",
            "argsDigest": digest(ARGS),
            "scope": "channel",
            "runId": None,
            "actor": owner.user_id,
        }
        path = f"/api/v1/agents/{agent['id']}/remembered/{entry_id}"
        assert (await owner.human.delete(path)).status_code == 200
        gone = await live.wait_for(
            lambda i: i.name == "approval:revoked" and i.payload["rememberedId"] == entry_id
        )
        assert gone.payload["actor"] == owner.user_id


async def test_an_embedded_page_answers_but_never_remembers(stack: RunningStack, team: list[Owner]) -> None:
    owner = team[0]
    agent = await owner.create_agent()
    made = await owner.human.post(
        "/api/v1/tokens", json={"channelIds": [agent["id"]], "answer": True, "expiresInSeconds": 600}
    )
    assert made.status_code == 201, made.text
    message = await call(owner, agent["id"])
    async with stack.client(Authorization=f"Bearer {made.json()['token']}") as page:
        body = {"response": APPROVE, "remember": HOUR}
        refused = await page.post(f"/api/v1/reviews/{message['id']}/respond", json=body)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["field"] == "remember"
        assert await remembered(owner.agent, agent["id"]) == []
        plain = await page.post(f"/api/v1/reviews/{message['id']}/respond", json={"response": APPROVE})
        assert plain.status_code == 200, plain.text


async def test_removing_a_member_revokes_what_they_remembered(team: list[Owner]) -> None:
    """Found in the review read: a removed member's "allow for 7 days" kept answering the owner's
    channel. Removal revokes their entries (the owner's stay), each with its event."""
    owner, member, _ = team
    agent = await shared_agent(team)
    channel = agent["id"]
    theirs = await call(owner, channel)
    assert (await answer(member, theirs["id"], HOUR)).status_code == 200
    mine = await call(owner, channel, {"other": True})
    assert (await answer(owner, mine["id"], HOUR)).status_code == 200
    assert (await call(owner, channel))["review"]["status"] == "completed"
    removed = await owner.human.delete(f"/api/v1/agents/{channel}/members/{member.user_id}")
    assert removed.status_code in (200, 204), removed.text
    assert [e["createdBy"] for e in await remembered(owner.agent, channel)] == [owner.user_id]
    assert (await call(owner, channel))["review"]["status"] == "pending"
    assert (await call(owner, channel, {"other": True}))["review"]["status"] == "completed"
