"""The audit log on the real stack: a mixed run (a person's answers, a policy's decisions, quorum
votes, expiries with and without a default, policy changes) where every decision appears exactly
once with its actor, rule and version; the filters and paging; the streamed exports; who sees
what; the retention TTL; and that an event stored twice (a relay republishing after a crash)
makes one entry."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sayso_common import audit
from sayso_common.events import MessageData, ReviewResponded
from sayso_common.views import MessageView, ReviewView
from tests.api.test_review_policies import settled
from tests.support.stack import Owner, RunningStack, eventually

APPROVE = {"selectedOption": "approve"}
REJECT = {"selectedOption": "reject"}
FORM = {
    "type": "form",
    "payload": {
        "fields": [
            {"name": "title", "label": "Title", "type": "text", "required": True},
            {"name": "pin", "label": "PIN", "type": "password"},
        ]
    },
}


@pytest.fixture(scope="module")
async def team(stack: RunningStack) -> AsyncIterator[list[Owner]]:
    """An owner, a member of the owner's channel, an outsider."""
    async with stack.new_owners(3) as people:
        yield people


@pytest.fixture(scope="module")
async def run(stack: RunningStack, team: list[Owner]) -> dict[str, Any]:
    """One mixed run in a channel shared with ``team[1]``; returns its ids."""
    owner, member, _ = team
    agent = await owner.create_agent()
    channel = agent["id"]
    added = await owner.human.post(f"/api/v1/agents/{channel}/members", json={"email": member.email})
    assert added.status_code == 201, added.text
    path = f"/api/v1/agents/{channel}/policy"
    rules = [{"match": {"metadata.env": "staging"}, "action": "approve", "response": APPROVE}]
    first = await owner.agent.put(path, json={"rules": [{"match": {}, "action": "ask"}]})  # by API key
    assert first.status_code == 200, first.text
    second = await owner.human.put(path, json={"rules": [{"match": {}, "action": "ask"}, *rules]})
    assert second.status_code == 200, second.text
    account = await owner.human.put("/api/v1/policy", json={"rules": []})
    assert account.status_code == 200, account.text

    asked = await owner.post_message(channel, review={"type": "approval"}, metadata={"env": "staging"})
    assert asked["review"]["status"] == "pending"  # rule 0 (ask) wins: first match
    third = await owner.human.put(path, json={"rules": rules})  # version 3: approve first
    assert third.status_code == 200, third.text
    auto = await owner.post_message(channel, review={"type": "approval"}, metadata={"env": "staging"})
    assert auto["review"]["decidedBy"]["version"] == 3
    answered = await owner.respond(asked["id"], REJECT)
    assert answered.status_code == 200, answered.text
    form = await owner.post_message(channel, review=FORM)
    filled = await owner.respond(form["id"], {"title": "t", "pin": "1234"})
    assert filled.status_code == 200, filled.text
    quorum = await owner.post_message(channel, review={"type": "approval", "quorum": {"approvals": 2}})
    for person in (member, owner):
        voted = await person.respond(quorum["id"], APPROVE)
        assert voted.status_code == 200, voted.text
    lapsed = await owner.post_message(channel, review={"type": "approval", "expiresInSeconds": 1})
    default = await owner.post_message(
        channel, review={"type": "approval", "expiresInSeconds": 1, "onExpire": {"response": REJECT}}
    )
    messages = [asked["id"], auto["id"], form["id"], quorum["id"], lapsed["id"], default["id"]]
    for message_id in messages:
        await settled(stack, message_id)
    return {
        "channel": channel,
        "policy": third.json()["id"],
        "account_policy": account.json()["id"],
        "asked": asked["id"],
        "auto": auto["id"],
        "form": form["id"],
        "quorum": quorum["id"],
        "lapsed": lapsed["id"],
        "default": default["id"],
    }


async def everything(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """Every page of the audit with ``params``, following the cursor."""
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(100):
        resp = await client.get("/api/v1/audit", params={**params, **({"cursor": cursor} if cursor else {})})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        entries += body["data"]
        cursor = body["nextCursor"]
        if cursor is None:
            return entries
    raise AssertionError("more than 100 pages")


def summary(entries: list[dict[str, Any]]) -> Counter[tuple[Any, ...]]:
    return Counter(
        (
            e["messageId"],
            e["kind"],
            e["actor"]["type"],
            e["actor"]["id"],
            e["decision"],
            e["rule"],
            e["policyVersion"],
        )
        for e in entries
    )


async def test_every_decision_appears_exactly_once(team: list[Owner], run: dict[str, Any]) -> None:
    owner, member, _ = team
    entries = await everything(owner.human, channelId=run["channel"])
    policy = run["policy"]
    by_key = next(e["actor"]["id"] for e in entries if e["actor"]["type"] == "agent")
    assert summary(entries) == Counter(
        [
            (None, "policy_changed", "agent", by_key, None, None, 1),
            (None, "policy_changed", "user", owner.user_id, None, None, 2),
            (None, "policy_changed", "user", owner.user_id, None, None, 3),
            (run["auto"], "auto_decided", "policy", policy, "approve", 0, 3),
            (run["asked"], "answered", "user", owner.user_id, "reject", None, None),
            (run["form"], "answered", "user", owner.user_id, "responded", None, None),
            (run["quorum"], "voted", "user", member.user_id, "approve", None, None),
            (run["quorum"], "voted", "user", owner.user_id, "approve", None, None),
            (run["quorum"], "quorum_decided", "user", owner.user_id, "approve", None, None),
            (run["lapsed"], "expired", "system", None, None, None, None),
            (run["default"], "expired_default", "system", None, "reject", None, None),
        ]
    ), entries
    assert by_key  # the API key's id
    # Newest first, ids unique, each entry whole.
    assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)
    assert len({e["id"] for e in entries}) == len(entries)
    by_kind = {e["kind"]: e for e in entries}
    assert by_kind["auto_decided"]["detail"]["policyId"] == policy
    assert by_kind["auto_decided"]["detail"]["response"] == APPROVE
    form = next(e for e in entries if e["messageId"] == run["form"])
    assert form["detail"]["response"] == {"title": "t", "pin": "***REDACTED***"}  # never a password
    assert by_kind["quorum_decided"]["detail"]["quorum"] == {"approvals": 2, "approved": 2}
    assert by_kind["expired_default"]["detail"]["response"] == REJECT
    assert by_kind["voted"]["actor"]["name"] in (owner.email, member.email)
    changed = [e for e in entries if e["kind"] == "policy_changed"]
    assert {e["detail"]["policyId"] for e in changed} == {policy}
    assert [e["detail"]["ruleCount"] for e in changed] == [1, 2, 1]
    # The account policy's change is the owner's, in no channel.
    mine = await everything(owner.human, kind="policy_changed")
    account = [e for e in mine if e["channelId"] is None]
    assert [(e["detail"]["policyId"], e["detail"]["scope"]) for e in account] == [
        (run["account_policy"], "account")
    ]


async def test_filters_and_paging(team: list[Owner], run: dict[str, Any]) -> None:
    owner, member, _ = team
    channel = run["channel"]
    full = await everything(owner.human, channelId=channel)
    paged = await everything(owner.human, channelId=channel, limit=2)
    assert [e["id"] for e in paged] == [e["id"] for e in full]
    by_policy = await everything(owner.agent, channelId=channel, actor="policy")
    assert [e["messageId"] for e in by_policy] == [run["auto"]]
    by_member = await everything(owner.agent, channelId=channel, actor=member.user_id)
    assert [(e["kind"], e["messageId"]) for e in by_member] == [("voted", run["quorum"])]
    system = await everything(owner.agent, channelId=channel, actor="system")
    assert sorted(e["messageId"] for e in system) == sorted([run["lapsed"], run["default"]])
    rejected = await everything(owner.agent, channelId=channel, decision="reject")
    assert sorted(e["messageId"] for e in rejected) == sorted([run["asked"], run["default"]])
    kinds = await everything(owner.agent, channelId=channel, kind="voted")
    assert len(kinds) == 2
    # A time window: from the newest entry (inclusive) to just after it.
    newest = datetime.fromisoformat(full[0]["at"])
    window = await everything(
        owner.agent,
        channelId=channel,
        **{"from": newest.isoformat(), "to": (newest + timedelta(milliseconds=1)).isoformat()},
    )
    assert full[0]["id"] in [e["id"] for e in window]
    assert all(datetime.fromisoformat(e["at"]) == newest for e in window)
    later = (newest + timedelta(seconds=1)).isoformat()
    assert await everything(owner.agent, channelId=channel, **{"from": later}) == []
    assert len(await everything(owner.agent, channelId=channel, to=later)) == len(full)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"cursor": "not a cursor"}, "cursor"),
        ({"kind": "sneezed"}, "kind"),
        ({"actor": ""}, "actor"),
        ({"channelId": "x" * 101}, "channelId"),
    ],
)
async def test_bad_filters_are_refused_naming_them(
    team: list[Owner], params: dict[str, Any], field: str
) -> None:
    for path in ("/api/v1/audit", "/api/v1/audit/export"):
        if path.endswith("export") and field in ("limit", "cursor"):
            continue
        resp = await team[0].agent.get(path, params=params)
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["field"] == field
    bad = await team[0].agent.get("/api/v1/audit/export", params={"format": "xml"})
    assert (bad.status_code, bad.json()["error"]["field"]) == (422, "format")


async def test_exports_stream_every_entry(team: list[Owner], run: dict[str, Any]) -> None:
    owner = team[0]
    full = await everything(owner.human, channelId=run["channel"])
    params = {"channelId": run["channel"]}
    async with owner.human.stream("GET", "/api/v1/audit/export", params=params) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/x-ndjson"
        assert "content-length" not in resp.headers  # streamed, not built whole
        lines = [line async for line in resp.aiter_lines() if line]
    assert [json.loads(line) for line in lines] == full
    async with owner.human.stream("GET", "/api/v1/audit/export", params={**params, "format": "csv"}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/csv")
        assert "content-length" not in resp.headers
        text = (await resp.aread()).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0] == ",".join(audit_csv_header())
    assert [r["id"] for r in rows] == [e["id"] for e in full]
    auto = next(r for r in rows if r["kind"] == "auto_decided")
    assert (auto["actorType"], auto["rule"], auto["policyVersion"], auto["decision"]) == (
        "policy",
        "0",
        "3",
        "approve",
    )
    assert json.loads(auto["detail"])["policyId"] == run["policy"]
    # Nothing matching: a CSV still has its header, JSON Lines is empty.
    none = await owner.human.get("/api/v1/audit/export", params={"format": "csv", "actor": "nobody"})
    assert none.text.splitlines() == [",".join(audit_csv_header())]
    assert (await owner.human.get("/api/v1/audit/export", params={"actor": "nobody"})).text == ""


def audit_csv_header() -> tuple[str, ...]:
    from sayso_api.audit import CSV_HEADER

    return CSV_HEADER


async def test_members_see_shared_channels_and_nobody_else_does(
    team: list[Owner], run: dict[str, Any]
) -> None:
    owner, member, outsider = team
    channel = run["channel"]
    full = await everything(owner.human, channelId=channel)
    # A member (signed in) reads the shared channel's audit, not the owner's account changes.
    shared = await everything(member.human, channelId=channel)
    # Every decision, but not the owner's policy changes (a member gets 404 for the policy).
    owners_only = {"policy_changed", "policy_fallback"}
    assert any(e["kind"] in owners_only for e in full)
    assert [e["id"] for e in shared] == [e["id"] for e in full if e["kind"] not in owners_only]
    theirs = await everything(member.human)
    assert {e["channelId"] for e in theirs} == {channel}
    # An API key acts for its own owner only; an outsider finds nothing, as for a missing channel.
    assert await everything(member.agent, channelId=channel) == []
    assert await everything(outsider.human, channelId=channel) == []
    assert await everything(outsider.human) == []
    export = await outsider.human.get("/api/v1/audit/export", params={"channelId": channel})
    assert (export.status_code, export.text) == (200, "")
    assert (
        await outsider.human.get("/api/v1/audit", headers={"authorization": "Bearer nope"})
    ).status_code == 401


async def test_a_rule_that_cannot_answer_says_why(team: list[Owner]) -> None:
    owner = team[0]
    agent = await owner.create_agent()
    rules = [
        {"match": {"review.type": "text-input"}, "action": "approve"},
        {"match": {}, "action": "approve"},
    ]
    saved = await owner.agent.put(f"/api/v1/agents/{agent['id']}/policy", json={"rules": rules})
    assert saved.status_code == 200, saved.text
    msg = await owner.post_message(agent["id"], review={"type": "text-input"})
    fallback = msg["review"]["policyFallback"]
    assert (msg["review"]["status"], fallback["rule"], fallback["version"]) == ("pending", 0, 1)
    assert "must carry a response" in fallback["reason"]

    async def audited() -> list[dict[str, Any]] | None:
        found = await everything(owner.human, channelId=agent["id"], kind="policy_fallback")
        return found or None

    [entry] = await eventually(audited, what="the fallback in the audit log")
    assert (entry["messageId"], entry["actor"], entry["rule"], entry["policyVersion"]) == (
        msg["id"],
        {"type": "policy", "id": saved.json()["id"], "name": None},
        0,
        1,
    )
    assert entry["detail"]["reason"] == fallback["reason"]
    # A review no rule tried to answer has none.
    plain = await team[0].post_message((await owner.create_agent())["id"], review={"type": "text-input"})
    assert plain["review"]["policyFallback"] is None


async def test_retention_is_a_ttl_index_with_the_setting(stack: RunningStack) -> None:
    mongo = stack.mongo()
    try:
        indexes = {ix["name"]: ix async for ix in await mongo.sayso.audit.list_indexes()}
        ttl = indexes[audit.RETENTION_INDEX]
        assert (dict(ttl["key"]), ttl["expireAfterSeconds"]) == ({"at": 1}, 365 * 24 * 3600)
        # Changing the setting changes the index in place; 0 removes it (kept for ever).
        scratch = mongo["audit_retention_test"]
        await scratch.drop_collection("audit")
        await audit.ensure_retention(scratch, 30)
        await audit.ensure_retention(scratch, 7)
        found = {ix["name"]: ix async for ix in await scratch.audit.list_indexes()}
        assert found[audit.RETENTION_INDEX]["expireAfterSeconds"] == 7 * 24 * 3600
        await audit.ensure_retention(scratch, 0)
        assert audit.RETENTION_INDEX not in {ix["name"] async for ix in await scratch.audit.list_indexes()}
        await mongo.drop_database("audit_retention_test")
    finally:
        await mongo.close()


async def test_an_event_stored_twice_makes_one_entry(stack: RunningStack) -> None:
    """The relay stores the entries before it pulls the events from the outbox; after a crash in
    between it publishes and stores them again, which must add nothing."""
    now = datetime.now(UTC)
    review = ReviewView(type="approval", status="completed", response=APPROVE, responded_by="usr_x")
    message = MessageView(id="msg_audit_twice", channel_id="agt_audit_twice", review=review, created_at=now)
    event = ReviewResponded(
        channel_id="agt_audit_twice", owner_id="usr_audit_twice", data=MessageData(message=message)
    )
    mongo = stack.mongo()
    try:
        db = mongo["audit_twice_test"]
        assert await audit.record(db, [event]) == 1
        assert await audit.record(db, [event, event]) == 0

        async def one() -> int | None:
            return await db.audit.count_documents({"message_id": "msg_audit_twice"}) or None

        assert await eventually(one) == 1
        await mongo.drop_database("audit_twice_test")
    finally:
        await mongo.close()


async def test_a_remembered_approval_is_audited_when_made_used_and_revoked(team: list[Owner]) -> None:
    """A member's answer remembers an approval, it answers the same call, the owner revokes it by
    API key: one entry each, the auto-answer naming the remembered approval and who granted it,
    the revocation the key (an agent, not a user called ``key:…``)."""
    owner, member, _ = team
    agent = await owner.create_agent()
    channel = agent["id"]
    added = await owner.human.post(f"/api/v1/agents/{channel}/members", json={"email": member.email})
    assert added.status_code == 201, added.text
    metadata = {"tool": "deploy", "args": {"service": "web"}}
    first = await owner.post_message(channel, review={"type": "approval"}, metadata=metadata)
    remember = {"forSeconds": 3600, "scope": "channel"}
    answered = await member.human.post(
        f"/api/v1/reviews/{first['id']}/respond", json={"response": APPROVE, "remember": remember}
    )
    assert answered.status_code == 200, answered.text
    again = await owner.post_message(channel, review={"type": "approval"}, metadata=metadata)
    rem_id = again["review"]["decidedBy"]["remembered"]
    revoked = await owner.agent.delete(f"/api/v1/agents/{channel}/remembered/{rem_id}")
    assert revoked.status_code == 200, revoked.text
    key_id = revoked.json()["revokedBy"].removeprefix("key:")

    async def audited() -> list[dict[str, Any]] | None:
        found = await everything(owner.human, channelId=channel)
        kinds = {e["kind"] for e in found}
        return (
            found
            if {"answered", "auto_decided", "approval_remembered", "approval_revoked"} <= kinds
            else None
        )

    entries = await eventually(audited, what="the remembered approval's entries")
    assert Counter(e["kind"] for e in entries) == {
        "answered": 1,
        "auto_decided": 1,
        "approval_remembered": 1,
        "approval_revoked": 1,
    }
    by_kind = {e["kind"]: e for e in entries}
    made, used, gone = by_kind["approval_remembered"], by_kind["auto_decided"], by_kind["approval_revoked"]
    assert made["actor"] == {"type": "user", "id": member.user_id, "name": member.email}
    assert {k: made["detail"][k] for k in ("rememberedId", "tool", "scope")} == {
        "rememberedId": rem_id,
        "tool": "deploy",
        "scope": "channel",
    }
    assert "actor" not in made["detail"]
    # The auto-answer: decided by the remembered approval the member granted, not by a policy.
    assert (used["messageId"], used["decision"], used["rule"]) == (again["id"], "approve", None)
    assert used["actor"] == {"type": "user", "id": member.user_id, "name": member.email}
    assert {k: used["detail"].get(k) for k in ("rememberedId", "grantedBy", "grantedOnReview")} == {
        "rememberedId": rem_id,
        "grantedBy": member.user_id,
        "grantedOnReview": first["id"],
    }
    assert "policyId" not in used["detail"]
    assert gone["actor"] == {"type": "agent", "id": key_id, "name": None}
    assert gone["detail"]["rememberedId"] == rem_id
    # The actor filter finds the revocation by the key's id.
    assert [e["kind"] for e in await everything(owner.human, channelId=channel, actor=key_id)] == [
        "approval_revoked"
    ]
