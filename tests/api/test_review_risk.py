"""Risk on the real stack (issue #29 item 3, the API half): a review's ``risk`` comes from the
agent's ``metadata.risk`` or the matching rule's ``risk``, the higher of the two, and shows in REST
reads, the long-poll answer and the stored events; ``/reviews/pending`` and ``/reviews/inbox``
filter by risk, type, channel and age and sort by risk, deadline or newest, the inbox paging each
sort without losing or repeating a review, on an index that serves the sort."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sayso_common.ids import min_id
from tests.support.stack import Owner, RunningStack, eventually

RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}


@pytest.fixture(scope="module")
async def people(stack: RunningStack) -> AsyncIterator[list[Owner]]:
    async with stack.new_owners(2) as found:
        yield found


async def ask(
    owner: Owner, channel: str, risk: Any = None, expires: int = 3600, **extra: Any
) -> dict[str, Any]:
    metadata = {"risk": risk} if risk is not None else None
    review = {"type": "approval", "expiresInSeconds": expires, **extra}
    return await owner.post_message(channel, review=review, **({"metadata": metadata} if metadata else {}))


async def test_risk_comes_from_metadata_or_the_rule_the_higher_wins(
    stack: RunningStack, people: list[Owner]
) -> None:
    owner = people[0]
    agent = await owner.create_agent()
    rules = [
        {"match": {"metadata.tool": "deploy"}, "action": "ask", "risk": "high"},
        {"match": {"metadata.tool": "cleanup"}, "action": "reject", "risk": "critical"},
    ]
    saved = await owner.agent.put(f"/api/v1/agents/{agent['id']}/policy", json={"rules": rules})
    assert saved.status_code == 200, saved.text
    cases = [
        ({"risk": "medium"}, "medium"),  # metadata alone
        ({"tool": "deploy"}, "high"),  # the rule alone
        ({"tool": "deploy", "risk": "low"}, "high"),  # the agent cannot talk it down
        ({"tool": "deploy", "risk": "critical"}, "critical"),  # nor the rule bury the agent's flag
        ({"risk": "urgent"}, None),  # not a label: ignored
        ({"tool": "cleanup"}, "critical"),  # a deciding rule's risk is kept too
        (None, None),
    ]
    for metadata, expected in cases:
        body: dict[str, Any] = {"review": {"type": "approval"}}
        if metadata is not None:
            body["metadata"] = metadata
        created = await owner.post_message(agent["id"], **body)
        assert created["review"]["risk"] == expected, (metadata, created["review"])
        read = (await owner.agent.get(f"/api/v1/reviews/{created['id']}")).json()
        assert read["review"]["risk"] == expected
    # The long-poll answer and the stored event carry it as well.
    pending = await owner.post_message(agent["id"], review={"type": "approval"}, metadata={"tool": "deploy"})
    polled = await owner.agent.get(
        f"/api/v1/reviews/{pending['id']}/wait", params={"channel": agent["id"], "timeout": 50}
    )
    assert polled.status_code == 200, polled.text
    assert (polled.json()["status"], polled.json()["message"]["review"]["risk"]) == ("pending", "high")
    mongo = stack.mongo()
    try:
        db = mongo[stack.mongo_db]

        async def created_event() -> dict[str, Any] | None:
            return await db.events.find_one({"type": "message.created", "data.message.id": pending["id"]})

        event = await eventually(created_event, what="message.created stored")
        assert event["data"]["message"]["review"]["risk"] == "high"
        stored = await db.messages.find_one({"_id": pending["id"]})
        assert stored is not None
        assert (stored["review"]["risk"], stored["review"]["risk_rank"]) == ("high", 3)
    finally:
        await mongo.close()


async def test_filters_by_risk_type_channel_and_age(stack: RunningStack, people: list[Owner]) -> None:
    owner = people[1]
    first, second = await owner.create_agent(), await owner.create_agent()
    low = await ask(owner, first["id"], "low")
    high = await ask(owner, first["id"], "high")
    plain = await ask(owner, second["id"])
    text = await owner.post_message(second["id"], review={"type": "text-input"}, metadata={"risk": "high"})

    async def ids(path: str, **params: Any) -> list[str]:
        resp = await owner.human.get(path, params=params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        return [m["id"] for m in (body if isinstance(body, list) else body["data"])]

    for path in ("/api/v1/reviews/pending", "/api/v1/reviews/inbox"):
        assert await ids(path, risk="high") == [text["id"], high["id"]]
        assert await ids(path, risk=["low", "none"]) == [plain["id"], low["id"]]
        assert await ids(path, risk="low,high", type="approval") == [high["id"], low["id"]]
        assert await ids(path, type="text-input") == [text["id"]]
        assert await ids(path, channelId=first["id"]) == [high["id"], low["id"]]
        assert await ids(path, channelId=second["id"], risk="none") == [plain["id"]]
        assert await ids(path, olderThan=3600) == []
    # An older review (its id made an hour earlier, as the clock would have) is the only one older
    # than 30 minutes.
    mongo = stack.mongo()
    try:
        db = mongo[stack.mongo_db]
        doc = await db.messages.find_one({"_id": low["id"]})
        assert doc is not None
        old_id = min_id("msg", int(time.time() * 1000) - 3_600_000)
        clone = {k: v for k, v in doc.items() if k not in ("outbox", "client_id")}
        await db.messages.insert_one({**clone, "_id": old_id})
        try:
            for path in ("/api/v1/reviews/pending", "/api/v1/reviews/inbox"):
                assert await ids(path, olderThan=1800) == [old_id]
                assert await ids(path, olderThan=1800, risk="high") == []
        finally:
            await db.messages.delete_one({"_id": old_id})
    finally:
        await mongo.close()
    # The agent's key filters its own pending reviews the same way.
    agent_view = await owner.agent.get(
        "/api/v1/reviews/pending", params={"channel": first["id"], "risk": "low"}
    )
    assert [m["id"] for m in agent_view.json()] == [low["id"]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"risk": "extreme"}, "risk"),
        ({"risk": "low,severe"}, "risk"),
        ({"type": "poll"}, "type"),
        ({"sort": "worst"}, "sort"),
        ({"olderThan": -1}, "olderThan"),
        ({"olderThan": "soon"}, "olderThan"),
        ({"sort": "risk", "cursor": "msg_0000000000000000000000000a"}, "cursor"),
        ({"sort": "deadline", "cursor": "r3.msg_0000000000000000000000000a"}, "cursor"),
        ({"cursor": "d12.msg_0000000000000000000000000a"}, "cursor"),
    ],
)
async def test_a_bad_parameter_is_named(people: list[Owner], params: dict[str, Any], field: str) -> None:
    resp = await people[0].human.get("/api/v1/reviews/inbox", params=params)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["field"] == field
    if "cursor" not in params:
        pending = await people[0].human.get("/api/v1/reviews/pending", params=params)
        assert pending.status_code == 422, pending.text
        assert pending.json()["error"]["field"] == field


async def test_each_sort_pages_every_review_once_on_its_index(stack: RunningStack) -> None:
    async with stack.new_owners(1) as (owner,):
        agent = await owner.create_agent()
        made: list[dict[str, Any]] = []
        # Ties on purpose: several reviews share a label, and two share a deadline to the second.
        for risk, expires in [
            ("low", 900), ("high", 600), (None, 300), ("high", 1200), ("critical", 900),
            ("low", 60), (None, 600), ("medium", 1800), ("high", 600),
        ]:  # fmt: skip
            made.append(await ask(owner, agent["id"], risk, expires))

        def key_risk(m: dict[str, Any]) -> tuple[int, str]:
            return (RANK.get(m["review"]["risk"] or "", 0), m["id"])

        expected = {
            "newest": [m["id"] for m in sorted(made, key=lambda m: m["id"], reverse=True)],
            "risk": [m["id"] for m in sorted(made, key=key_risk, reverse=True)],
            "deadline": [m["id"] for m in sorted(made, key=lambda m: (m["review"]["expiresAt"], m["id"]))],
        }
        for sort, order in expected.items():
            seen: list[str] = []
            cursor = None
            for _ in range(len(made) + 2):
                params: dict[str, Any] = {"limit": 2, "sort": sort}
                if cursor:
                    params["cursor"] = cursor
                page = await owner.human.get("/api/v1/reviews/inbox", params=params)
                assert page.status_code == 200, page.text
                seen += [m["id"] for m in page.json()["data"]]
                cursor = page.json()["nextCursor"]
                if cursor is None:
                    break
            assert seen == order, sort
            pending = await owner.agent.get("/api/v1/reviews/pending", params={"sort": sort})
            assert [m["id"] for m in pending.json()] == order, sort
        # An answered review leaves every sort.
        answered = await owner.respond(made[4]["id"], {"selectedOption": "approve"})
        assert answered.status_code == 200, answered.text
        first = (await owner.human.get("/api/v1/reviews/inbox", params={"sort": "risk", "limit": 1})).json()
        assert first["data"][0]["id"] != made[4]["id"]
        assert first["data"][0]["review"]["risk"] == "high"
        # The sorted reads use their index, with no sort in memory.
        mongo = stack.mongo()
        try:
            db = mongo[stack.mongo_db]
            for sort, keys in (
                ("risk", "IXSCAN { owner_id: 1, review.risk_rank: -1, _id: -1 }"),
                ("deadline", "IXSCAN { owner_id: 1, review.expires_at: 1, _id: 1 }"),
            ):
                assert await _plan(db, owner, sort) == (keys, False)
        finally:
            await mongo.close()


async def _plan(db: Any, owner: Owner, sort: str) -> tuple[str, bool]:
    """(planSummary, whether it sorted in memory) of the inbox's query for ``owner`` sorted by
    ``sort``, as the API sent it, from the profiler (on for this one request)."""
    await db.command({"profile": 2})
    try:
        resp = await owner.human.get("/api/v1/reviews/inbox", params={"sort": sort, "limit": 2})
        assert resp.status_code == 200, resp.text
    finally:
        await db.command({"profile": 0})
    for entry in await db.system.profile.find({"ns": f"{db.name}.messages"}).sort("ts", -1).to_list():
        command = entry["command"]
        # (The sort key's dotted name cannot be queried for: it is compared here.)
        if (
            owner.user_id in str(command.get("filter"))
            and next(iter(command.get("sort") or {"": 1})) == _FIRST[sort]
        ):
            return str(entry.get("planSummary")), bool(entry.get("hasSortStage"))
    raise AssertionError("the inbox's query was not profiled")


_FIRST = {"risk": "review.risk_rank", "deadline": "review.expires_at"}
