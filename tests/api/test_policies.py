"""Policies on the real stack: saving and reading a channel's and an account's rules (each save a
version), who may (owners only), the 422 that names a bad rule's index and field, reviews
answered on arrival by approve and reject rules (first match, channel before account) through
the same completion a person's answer takes, a Placet-style agent receiving that answer as a
signed ``review:responded`` webhook and a long-poll answer, and the dry run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sayso_api.policies import PolicyBook
from sayso_common.webhook_signature import matches
from tests.api.test_review_policies import settled
from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack, eventually

STAGING = {"metadata.env": "staging"}
DEPLOY = {"text": "Deploy web?", "review": {"type": "approval"}}
SELECTION = {"type": "selection", "payload": {"mode": "single", "items": [{"id": "a", "label": "A"}]}}


@pytest.fixture(scope="module")
async def team(stack: RunningStack) -> AsyncIterator[list[Owner]]:
    """An owner, a member of the owner's channels, and an outsider (made once: Argon2 is slow)."""
    async with stack.new_owners(3) as people:
        yield people


async def put_policy(owner: Owner, rules: list[dict[str, Any]], channel: str | None = None) -> dict[str, Any]:
    path = f"/api/v1/agents/{channel}/policy" if channel else "/api/v1/policy"
    resp = await owner.agent.put(path, json={"rules": rules})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_a_policy_is_saved_whole_and_versioned(team: list[Owner]) -> None:
    owner = team[0]
    agent = await owner.create_agent()
    path = f"/api/v1/agents/{agent['id']}/policy"
    empty = (await owner.agent.get(path)).json()
    assert empty == {
        "id": None, "scope": "channel", "channelId": agent["id"], "rules": [], "version": 0, "updatedAt": None,
    }  # fmt: skip
    first = [{"name": "staging", "match": STAGING, "action": "approve", "risk": "low"}]
    saved = await put_policy(owner, first, agent["id"])
    assert (saved["rules"], saved["version"], saved["scope"]) == (first, 1, "channel")
    assert saved["id"].startswith("pol_")
    second = [{"match": {}, "action": "ask"}]
    # The owner's session may change it too; the id stays, the version moves on.
    again = await owner.human.put(path, json={"rules": second})
    assert again.status_code == 200, again.text
    assert (again.json()["id"], again.json()["version"], again.json()["rules"]) == (saved["id"], 2, second)
    assert (await owner.human.get(path)).json() == again.json()
    versions = (await owner.agent.get(f"{path}/versions")).json()["data"]
    assert [(v["version"], v["rules"]) for v in versions] == [(2, second), (1, first)]
    assert versions[0]["createdBy"] == owner.user_id
    assert versions[1]["createdBy"].startswith("key:")
    account = await put_policy(owner, first)
    assert (account["scope"], account["channelId"], account["version"]) == ("account", None, 1)
    assert account["id"] != saved["id"]
    assert (await owner.agent.get("/api/v1/policy")).json() == account


async def test_only_the_owner_sees_or_changes_a_channel_policy(team: list[Owner]) -> None:
    owner, member, outsider = team
    agent = await owner.create_agent()
    added = await owner.human.post(f"/api/v1/agents/{agent['id']}/members", json={"email": member.email})
    assert added.status_code == 201, added.text
    saved = await put_policy(owner, [{"match": {}, "action": "approve"}], agent["id"])
    path = f"/api/v1/agents/{agent['id']}/policy"
    for who in (member.human, member.agent, outsider.human, outsider.agent):
        assert (await who.get(path)).status_code == 404
        assert (await who.get(f"{path}/versions")).status_code == 404
        put = await who.put(path, json={"rules": []})
        assert put.status_code == 404, put.text
        dry = await who.post("/api/v1/policies/test", json={"channelId": agent["id"], "message": DEPLOY})
        assert dry.status_code == 404, dry.text
    assert (await owner.agent.get(path)).json() == saved
    # The account policy is always the caller's own.
    assert (await member.human.get("/api/v1/policy")).json()["id"] is None
    assert (await owner.agent.get("/api/v1/agents/agt_nobody/policy")).status_code == 404
    assert (await owner.agent.get(path, headers={"x-api-key": "hp_wrong"})).status_code == 401


@pytest.mark.parametrize(
    ("rules", "field"),
    [
        (
            [{"match": {}, "action": "ask"}] * 3
            + [{"match": {"metadata.amount": {"$gt": [1]}}, "action": "approve"}],
            "rules[3].match.metadata.amount.$gt",
        ),
        (
            [{"match": {"metadata.tool": {"$like": "x"}}, "action": "ask"}],
            "rules[0].match.metadata.tool.$like",
        ),
        ([{"match": {"text": {"$regex": "(unclosed"}}, "action": "ask"}], "rules[0].match.text.$regex"),
        ([{"match": {}, "action": "allow"}], "rules[0].action"),
        ([{"match": {}, "action": "ask"}, {"action": "approve"}], "rules[1].match"),
        ([{"match": {}, "action": "ask", "response": {"text": "x"}}], "rules[0].response"),
        (
            [{"match": {"review.type": "approval"}, "action": "approve", "response": {"text": "x"}}],
            "rules[0].response.text",
        ),
        ([{"match": {}, "action": "ask", "priority": 1}], "rules[0].priority"),
        ([{"match": {}, "action": "ask"}] * 201, "rules"),
    ],
)
async def test_a_bad_rule_is_refused_naming_it(team: list[Owner], rules: list[Any], field: str) -> None:
    owner = team[0]
    agent = await owner.create_agent()
    for path in (f"/api/v1/agents/{agent['id']}/policy", "/api/v1/policy"):
        before = (await owner.agent.get(path)).json()
        resp = await owner.agent.put(path, json={"rules": rules})
        assert resp.status_code == 422, resp.text
        error = resp.json()["error"]
        assert (error["code"], error["field"]) == ("invalid_policy", field), error
        assert (await owner.agent.get(path)).json() == before  # nothing saved


@pytest.mark.parametrize(
    "body",
    [{}, {"rules": "approve"}, {"rules": [], "extra": 1}, [1]],
    ids=["no rules", "rules not a list", "unknown field", "not an object"],
)
async def test_a_bad_policy_body_is_refused(team: list[Owner], body: Any) -> None:
    resp = await team[0].agent.put("/api/v1/policy", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["message"]


async def test_rules_decide_on_arrival_channel_first_then_account(
    stack: RunningStack, team: list[Owner]
) -> None:
    owner = team[0]
    agent = await owner.create_agent()
    other = await owner.create_agent()
    channel = await put_policy(
        owner,
        [
            {"match": {"text": {"$regex": "drop\\s+table", "$options": "i"}}, "action": "reject",
             "response": {"comment": "never"}},
            {"match": {**STAGING, "metadata.amount": {"$lt": 100}}, "action": "approve"},
            {"match": {"metadata.env": "production"}, "action": "ask"},
        ],
        agent["id"],
    )  # fmt: skip
    account = await put_policy(
        owner, [{"match": {"metadata.env": {"$in": ["production", "qa"]}}, "action": "approve"}]
    )

    async def post(channel_id: str, text: str, metadata: dict[str, Any]) -> dict[str, Any]:
        return await owner.post_message(channel_id, text=text, metadata=metadata, review={"type": "approval"})

    approved = await post(agent["id"], "deploy", {"env": "staging", "amount": 5})
    review = approved["review"]
    assert (review["status"], review["response"], review["respondedBy"]) == (
        "completed", {"selectedOption": "approve"}, None,
    )  # fmt: skip
    assert review["decidedBy"] == {"policy": channel["id"], "rule": 1, "version": 1}
    assert review["completedAt"] is not None
    rejected = await post(agent["id"], "DROP  TABLE users", {"env": "staging", "amount": 5})
    assert rejected["review"]["response"] == {"selectedOption": "reject", "comment": "never"}
    assert rejected["review"]["decidedBy"]["rule"] == 0
    # Over the limit: no channel rule matches, and the account's rule does not either.
    big = await post(agent["id"], "deploy", {"env": "staging", "amount": 500})
    assert (big["review"]["status"], big["review"]["decidedBy"]) == ("pending", None)
    # The channel's ask rule stops the account's approve; in another channel the account decides.
    asked = await post(agent["id"], "deploy", {"env": "production"})
    assert asked["review"]["status"] == "pending"
    elsewhere = await post(other["id"], "deploy", {"env": "production"})
    assert elsewhere["review"]["decidedBy"] == {
        "policy": account["id"],
        "rule": 0,
        "version": account["version"],
    }
    plain = await owner.post_message(other["id"], text="no review", metadata={"env": "production"})
    assert plain["review"] is None
    # Stored once, with one message.created then one review.responded, never seen pending.
    state = await settled(stack, approved["id"])
    # (Event ids made in the same millisecond do not sort by creation: compared as a set.)
    assert sorted(state["types"]) == ["message.created", "review.responded"]
    assert state["doc"]["review"]["decided_by"] == review["decidedBy"]
    assert "responded_by" not in state["doc"]["review"]
    pending = (await owner.agent.get("/api/v1/reviews/pending", params={"channel": agent["id"]})).json()
    assert {m["id"] for m in pending} == {big["id"], asked["id"]}
    # A person cannot answer it again.
    assert (await owner.respond(approved["id"], {"selectedOption": "reject"})).status_code == 409
    # A new version decides with its own number.
    await put_policy(owner, [{"match": {}, "action": "reject"}], agent["id"])
    again = await post(agent["id"], "deploy", {"env": "staging", "amount": 5})
    assert again["review"]["decidedBy"] == {"policy": channel["id"], "rule": 0, "version": 2}
    assert again["review"]["response"] == {"selectedOption": "reject"}


async def test_a_rule_that_cannot_apply_leaves_the_review_to_a_person(
    stack: RunningStack, team: list[Owner]
) -> None:
    owner = team[0]
    agent = await owner.create_agent()
    saved = await put_policy(
        owner,
        [
            {"match": {"review.type": "selection"}, "action": "approve", "response": {"selectedIds": ["zz"]}},
            {"match": {"review.type": "text-input"}, "action": "approve"},
            {"match": {}, "action": "approve"},
        ],
        agent["id"],
    )
    waiting = []
    for review in (SELECTION, {"type": "text-input"}):
        msg = await owner.post_message(agent["id"], review=review)
        assert (msg["review"]["status"], msg["review"]["decidedBy"]) == ("pending", None)
        waiting.append(msg["id"])
    # The review records which rule matched and why it did not answer (for the audit).
    mongo = stack.mongo()
    try:
        found = await mongo[stack.mongo_db].messages.find({"_id": {"$in": waiting}}).to_list()
    finally:
        await mongo.close()
    notes = {d["review"]["type"]: d["review"]["policy_fallback"] for d in found}
    assert notes["selection"]["rule"] == 0
    assert "unknown option id 'zz'" in notes["selection"]["reason"]
    assert (notes["text-input"]["rule"], notes["text-input"]["policy"]) == (1, saved["id"])
    assert "must carry a response" in notes["text-input"]["reason"]
    # The owner reads it on the review (the inbox shows it); a member of the channel does not.
    seen = (await owner.agent.get(f"/api/v1/reviews/{waiting[0]}")).json()["review"]["policyFallback"]
    assert seen == {**notes["selection"], "policy": saved["id"]}
    member = team[1]
    added = await owner.human.post(f"/api/v1/agents/{agent['id']}/members", json={"email": member.email})
    assert added.status_code == 201, added.text
    shared = await member.human.get(f"/api/v1/reviews/{waiting[0]}", params={"channel": agent["id"]})
    assert shared.status_code == 200, shared.text
    assert shared.json()["review"]["policyFallback"] is None
    selection_ok = await owner.agent.put(
        f"/api/v1/agents/{agent['id']}/policy",
        json={
            "rules": [
                {
                    "match": {"review.type": "selection"},
                    "action": "approve",
                    "response": {"selectedIds": ["a"]},
                }
            ]
        },
    )
    assert selection_ok.status_code == 200
    msg = await owner.post_message(agent["id"], review=SELECTION)
    assert (msg["review"]["status"], msg["review"]["response"]) == ("completed", {"selectedIds": ["a"]})


async def test_a_placet_agent_gets_an_automatic_answer_unchanged(
    stack: RunningStack, team: list[Owner], receiver: Receiver
) -> None:
    owner = team[0]
    agent = await owner.create_agent(webhookUrl=receiver.url("/placet"))
    await put_policy(owner, [{"match": STAGING, "action": "approve"}], agent["id"])
    # What a Placet agent does: post, then wait on the long-poll or for its webhook.
    posted = await owner.agent.post(
        "/api/v1/messages", json={"channelId": agent["id"], **DEPLOY, "metadata": {"env": "staging"}}
    )
    assert posted.status_code == 201, posted.text
    msg = posted.json()
    processa = await owner.post_message(
        agent["id"], **DEPLOY, metadata={"env": "staging"},
        webhookUrl=receiver.url("/processa"), webhookFormat="processa",
    )  # fmt: skip
    waited = await owner.agent.get(f"/api/v1/reviews/{msg['id']}/wait", params={"channel": agent["id"]})
    assert waited.status_code == 200, waited.text
    assert waited.json()["status"] == "completed"
    assert waited.json()["message"]["review"]["response"] == {"selectedOption": "approve"}
    [hook] = await receiver.wait_for("/placet")
    assert matches(
        [agent["webhookSecret"]],
        hook.headers["webhook-id"],
        int(hook.headers["webhook-timestamp"]),
        hook.body,
        hook.headers["webhook-signature"],
    )
    body = hook.json()
    assert (body["event"], body["channelId"], body["message_id"], body["review_type"], body["response"]) == (
        "review:responded", agent["id"], msg["id"], "approval", {"selectedOption": "approve"},
    )  # fmt: skip
    assert body["decidedBy"] == msg["review"]["decidedBy"]
    assert list(body)[:6] == ["event", "channelId", "message_id", "review_type", "response", "responded_at"]
    [draft] = await receiver.wait_for("/processa")
    assert draft.json()["event"] == "draft.approved"
    assert draft.json()["draft"]["id"] == processa["id"]
    read = (await owner.agent.get(f"/api/v1/reviews/{msg['id']}")).json()
    assert read["review"] == msg["review"]
    await settled(stack, msg["id"])


async def test_the_dry_run_says_what_would_happen_and_stores_nothing(
    stack: RunningStack, team: list[Owner]
) -> None:
    owner = team[0]
    agent = await owner.create_agent()

    async def dry(message: dict[str, Any]) -> dict[str, Any]:
        resp = await owner.agent.post(
            "/api/v1/policies/test", json={"channelId": agent["id"], "message": message}
        )
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    nothing = await dry(DEPLOY)
    assert (nothing["action"], nothing["rule"], nothing["policy"]) == ("ask", None, None)
    channel = await put_policy(
        owner,
        [
            {
                "name": "no drops",
                "match": {"text": {"$regex": "DROP TABLE"}},
                "action": "reject",
                "risk": "critical",
            },
            {"match": {"review.type": "selection"}, "action": "approve"},
        ],
        agent["id"],
    )
    account = await put_policy(owner, [{"match": STAGING, "action": "approve"}])
    assert await dry({"text": "DROP TABLE x", "review": {"type": "approval"}}) == {
        "action": "reject", "policy": channel["id"], "scope": "channel", "rule": 0, "ruleName": "no drops",
        "version": 1, "response": {"selectedOption": "reject"}, "risk": "critical", "reason": None,
        "reviewRisk": "critical", "asked": None,
    }  # fmt: skip
    staged = await dry({**DEPLOY, "metadata": {"env": "staging"}})
    assert (staged["action"], staged["policy"], staged["rule"], staged["scope"]) == (
        "approve",
        account["id"],
        0,
        "account",
    )
    cannot = await dry({"review": SELECTION})
    assert (cannot["action"], cannot["rule"]) == ("ask", 1)
    assert "must carry a response" in cannot["reason"]
    bad = await owner.agent.post(
        "/api/v1/policies/test",
        json={
            "channelId": agent["id"],
            "message": {"review": {"type": "approval", "payload": {"options": []}}},
        },
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "message.review.payload.options"
    mongo = stack.mongo()
    try:
        assert await mongo[stack.mongo_db].messages.count_documents({"channel_id": agent["id"]}) == 0
    finally:
        await mongo.close()


async def test_saves_racing_each_make_their_own_version(stack: RunningStack, team: list[Owner]) -> None:
    owner = team[0]
    agent = await owner.create_agent()
    path = f"/api/v1/agents/{agent['id']}/policy"
    bodies = [{"rules": [{"name": f"save {i}", "match": {}, "action": "ask"}]} for i in range(12)]
    answers = await asyncio.gather(*(owner.agent.put(path, json=body) for body in bodies))
    assert [a.status_code for a in answers] == [200] * len(bodies), [a.text for a in answers]
    assert sorted(a.json()["version"] for a in answers) == list(range(1, len(bodies) + 1))
    assert len({a.json()["id"] for a in answers}) == 1
    versions = (await owner.agent.get(f"{path}/versions")).json()["data"]
    # Each version holds the rules of the save that made it; the head is the last one.
    made = {a.json()["version"]: a.json()["rules"] for a in answers}
    assert {v["version"]: v["rules"] for v in versions} == made
    head = (await owner.agent.get(path)).json()
    assert head["rules"] == made[len(bodies)]


async def test_a_replica_keeping_policy_heads_sees_a_save_made_by_another(
    stack: RunningStack, team: list[Owner]
) -> None:
    """An API replica keeps the heads it read while the change stream is open; a save through
    another replica (here the stack's API) reaches it through that stream."""
    outsider = team[2]  # saves no other policy in this module
    agent = await outsider.create_agent()
    mongo = stack.mongo()
    replica = PolicyBook(mongo[stack.mongo_db])
    follower = asyncio.create_task(replica.follow_changes())
    try:

        async def watching() -> bool | None:
            return replica.watching or None

        await eventually(watching, what="the policies change stream open")
        assert await replica.applying(outsider.user_id, agent["id"]) == (None, None)
        assert replica.kept() == 1
        saved = await put_policy(outsider, [{"match": {}, "action": "approve"}], agent["id"])

        async def seen() -> tuple[Any, Any] | None:
            found = await replica.applying(outsider.user_id, agent["id"])
            return found if found[0] is not None else None

        channel, account = await eventually(seen, what="the save seen by the other replica")
        assert (channel.id, channel.version, account) == (saved["id"], 1, None)
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await mongo.close()
    assert not replica.watching
    assert replica.kept() == 0
