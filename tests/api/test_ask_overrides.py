"""An ``ask`` rule's overrides on the real stack (issue #29 item 1): ``quorum``, ``expiresInSeconds``,
``onExpire``, ``notify`` and ``risk`` saved, refused when bad (422 naming ``rules[i].<field>``),
applied to the review the rule leaves to people without ever loosening what the agent asked for,
and shown by the dry run; the notifier tells only the reviewers ``notify`` names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest

from tests.support.stack import Owner, RunningStack, eventually

REJECT = {"selectedOption": "reject"}
APPROVE = {"selectedOption": "approve"}


@pytest.fixture(scope="module")
async def team(stack: RunningStack) -> AsyncIterator[list[Owner]]:
    """An owner, two members of the owner's channels, and an outsider."""
    async with stack.new_owners(4) as people:
        yield people


async def shared(team: list[Owner]) -> dict[str, Any]:
    owner = team[0]
    agent = await owner.create_agent()
    for member in team[1:3]:
        added = await owner.human.post(f"/api/v1/agents/{agent['id']}/members", json={"email": member.email})
        assert added.status_code == 201, added.text
    return agent


def lifetime(message: dict[str, Any]) -> float:
    review = message["review"]
    return (
        datetime.fromisoformat(review["expiresAt"]) - datetime.fromisoformat(message["createdAt"])
    ).total_seconds()


async def test_an_ask_rule_changes_the_review_it_leaves_to_people(
    stack: RunningStack, team: list[Owner]
) -> None:
    owner, ana = team[0], team[1]
    agent = await shared(team)
    rules = [
        {
            "name": "production: two people, ten minutes, deny on timeout, Ana is told",
            "match": {"metadata.env": "production"},
            "action": "ask",
            "risk": "high",
            "quorum": {"approvals": 2},
            "expiresInSeconds": 600,
            "onExpire": {"response": REJECT},
            "notify": [ana.user_id],
        },
        {
            "match": {"metadata.env": "staging"},
            "action": "ask",
            "notify": "owner",
            "quorum": {"approvals": 1},
        },
    ]
    saved = await owner.agent.put(f"/api/v1/agents/{agent['id']}/policy", json={"rules": rules})
    assert saved.status_code == 200, saved.text
    assert saved.json()["rules"] == rules
    prod = {"metadata": {"env": "production"}}
    plain = await owner.post_message(agent["id"], review={"type": "approval"}, **prod)
    review = plain["review"]
    assert (review["status"], review["quorum"], review["risk"]) == (
        "pending",
        {"approvals": 2, "approved": 0},
        "high",
    )
    assert lifetime(plain) == 600
    assert (review["onExpire"], review["notify"]) == ({"response": REJECT}, [ana.user_id])
    # Never looser than the agent asked: its larger quorum, shorter deadline and own default stay.
    strict = await owner.post_message(
        agent["id"],
        review={
            "type": "approval",
            "quorum": {"approvals": 3},
            "expiresInSeconds": 60,
            "onExpire": {"response": {"selectedOption": "reject", "comment": "agent says no"}},
            "reminders": [30],
        },
        **prod,
    )
    assert strict["review"]["quorum"]["approvals"] == 3
    assert lifetime(strict) == 60
    assert strict["review"]["reminders"] == [30]
    # A longer deadline is shortened, and a reminder that could no longer happen is dropped.
    long = await owner.post_message(
        agent["id"], review={"type": "approval", "expiresInSeconds": 7200, "reminders": [3600, 300]}, **prod
    )
    assert (lifetime(long), long["review"]["reminders"]) == (600, [300])
    # The rule's default replaces the agent's approving one (a timeout must not approve prod).
    lenient = await owner.post_message(
        agent["id"], review={"type": "approval", "onExpire": {"response": APPROVE}}, **prod
    )
    assert lenient["review"]["onExpire"] == {"response": REJECT}
    # A quorum is for approval reviews: a text review still gets the rest.
    text = await owner.post_message(agent["id"], review={"type": "text-input"}, **prod)
    assert (text["review"]["quorum"], lifetime(text)) == (None, 600)
    assert text["review"]["onExpire"] is None  # reject does not fit a text review
    # quorum 1 adds nothing; "owner" is the channel's owner.
    staged = await owner.post_message(agent["id"], review={"type": "approval"}, metadata={"env": "staging"})
    assert (staged["review"]["quorum"], staged["review"]["notify"]) == (None, [owner.user_id])
    # Unmatched messages are as the agent sent them.
    other = await owner.post_message(agent["id"], review={"type": "approval"})
    assert (other["review"]["quorum"], other["review"]["notify"], other["review"]["risk"]) == (
        None,
        None,
        None,
    )
    # The raised quorum is a real one: one vote does not decide it.
    voted = await owner.respond(plain["id"], APPROVE)
    assert voted.status_code == 200, voted.text
    assert voted.json()["review"]["status"] == "pending"
    # The notifier tells Ana only about the production review; everyone about the others.
    mongo = stack.mongo()
    try:
        db = mongo[stack.mongo_db]

        async def told(message_id: str) -> set[str] | None:
            found = await db.notifications.find({"message_id": message_id, "purpose": "review"}).to_list()
            return {n["recipient_id"] for n in found} or None

        assert await eventually(lambda: told(plain["id"]), what="prod notices") == {ana.user_id}
        assert await eventually(lambda: told(staged["id"]), what="staging notices") == {owner.user_id}
        everyone = {p.user_id for p in team[:3]}
        assert await eventually(lambda: told(other["id"]), what="other notices") == everyone
    finally:
        await mongo.close()


async def test_the_dry_run_shows_the_review_people_would_get(team: list[Owner]) -> None:
    owner, ana = team[0], team[1]
    agent = await shared(team)
    rules = [
        {
            "match": {},
            "action": "ask",
            "risk": "medium",
            "quorum": {"approvals": 2},
            "expiresInSeconds": 600,
            "onExpire": {"response": APPROVE},
            "notify": [ana.user_id],
        }
    ]
    assert (
        await owner.agent.put(f"/api/v1/agents/{agent['id']}/policy", json={"rules": rules})
    ).status_code == 200
    sample = {
        "text": "Deploy?",
        "review": {"type": "approval", "expiresInSeconds": 60, "onExpire": {"response": REJECT}},
        "metadata": {"risk": "critical"},
    }
    resp = await owner.agent.post("/api/v1/policies/test", json={"channelId": agent["id"], "message": sample})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["action"], body["rule"], body["risk"], body["reviewRisk"]) == (
        "ask",
        0,
        "medium",
        "critical",
    )
    asked = body["asked"]
    assert {k: v for k, v in asked.items() if k != "notApplied"} == {
        "quorum": {"approvals": 2},
        "expiresInSeconds": 60,
        "onExpire": {"response": REJECT},
        "notify": [ana.user_id],
    }
    assert [why.split(":")[0] for why in asked["notApplied"]] == ["onExpire not applied"]


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"quorum": 2}, "rules[1].quorum"),
        ({"quorum": {"approvals": 0}}, "rules[1].quorum.approvals"),
        ({"quorum": {"approvals": 2}, "action": "approve"}, "rules[1].quorum"),
        ({"quorum": {"approvals": 2}, "match": {"review.type": "text-input"}}, "rules[1].quorum"),
        ({"expiresInSeconds": 0}, "rules[1].expiresInSeconds"),
        ({"expiresInSeconds": "soon"}, "rules[1].expiresInSeconds"),
        ({"onExpire": {"selectedOption": "reject"}}, "rules[1].onExpire"),
        ({"onExpire": {"response": {"selectedOption": "reject"}}, "action": "reject"}, "rules[1].onExpire"),
        ({"notify": "all"}, "rules[1].notify"),
        ({"notify": ["usr_nobody"]}, "rules[1].notify[0]"),
        ({"risk": "severe"}, "rules[1].risk"),
    ],
)
async def test_a_bad_override_is_refused_naming_it(
    team: list[Owner], rule: dict[str, Any], field: str
) -> None:
    owner = team[0]
    agent = await shared(team)
    rules = [{"match": {}, "action": "ask"}, {"match": {}, "action": "ask", **rule}]
    for path in (f"/api/v1/agents/{agent['id']}/policy", "/api/v1/policy"):
        resp = await owner.agent.put(path, json={"rules": rules})
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["field"] == field


async def test_notify_names_only_reviewers(team: list[Owner]) -> None:
    owner, ana, _, outsider = team
    agent = await shared(team)
    path = f"/api/v1/agents/{agent['id']}/policy"
    ok = await owner.agent.put(
        path, json={"rules": [{"match": {}, "action": "ask", "notify": [ana.user_id]}]}
    )
    assert ok.status_code == 200, ok.text
    refused = await owner.agent.put(
        path, json={"rules": [{"match": {}, "action": "ask", "notify": [ana.user_id, outsider.user_id]}]}
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["field"] == "rules[0].notify[1]"
    # The account's rules may name the members of any of the owner's channels.
    account = await owner.agent.put(
        "/api/v1/policy", json={"rules": [{"match": {}, "action": "ask", "notify": [ana.user_id]}]}
    )
    assert account.status_code == 200, account.text
    await owner.agent.put("/api/v1/policy", json={"rules": []})
