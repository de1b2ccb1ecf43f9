"""The pull feed (GET /api/v1/feed) on the real stack: pages followed by cursor see every event of
the account once, in order per channel, and nothing of other accounts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from sayso_api import feed
from sayso_common.events import AgentStatusChanged, AgentStatusData, EndpointDisabled, IncidentData
from sayso_common.ids import new_id
from sayso_common.mongo import ensure_indexes
from sayso_common.outbox import events_document
from tests.dispatcher.flows import answered
from tests.support.stack import Owner, RunningStack, eventually


@pytest.fixture(scope="module")
async def team(stack: RunningStack) -> AsyncIterator[list[Owner]]:
    """An owner, a member of the owner's channels, and an outsider (made once: Argon2 is slow)."""
    async with stack.new_owners(3) as people:
        yield people


async def read_all(
    client: httpx.AsyncClient, after: str | None = None, limit: int = 2, **params: str
) -> tuple[list[dict[str, Any]], str | None]:
    """Follow the cursor until a page comes back empty."""
    events: list[dict[str, Any]] = []
    cursor = after
    for _ in range(200):
        query = {"limit": str(limit), **params, **({"after": cursor} if cursor else {})}
        resp = await client.get("/api/v1/feed", params=query)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        if not page["data"]:
            assert page["nextCursor"] == cursor
            return events, cursor
        assert len(page["data"]) <= limit
        assert page["nextCursor"] == page["data"][-1]["cursor"]
        events.extend(page["data"])
        cursor = page["nextCursor"]
    raise AssertionError("the feed never ran dry")


async def test_the_feed_pages_every_event_once_in_order_per_channel(team: list[Owner]) -> None:
    owner, _, outsider = team
    first, second = await owner.create_agent(), await owner.create_agent()
    theirs = await outsider.create_agent()
    msgs = [
        await answered(owner, first["id"]),
        await answered(owner, second["id"]),
        await answered(owner, first["id"]),
    ]
    await answered(outsider, theirs["id"])

    async def everything() -> list[dict[str, Any]] | None:
        events, _ = await read_all(owner.agent)
        responded = [e for e in events if e["type"] == "review:responded"]
        return events if len(responded) >= len(msgs) else None

    events = await eventually(everything, 20.0, "the feed holds the three answers")
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)), "an event came twice within one walk"
    assert {e["channelId"] for e in events} == {first["id"], second["id"]}
    for msg in msgs:
        about = [e["type"] for e in events if e["data"].get("message", {}).get("id") == msg["id"]]
        assert about.index("message:created") < about.index("review:responded")
    responded = [e for e in events if e["type"] == "review:responded"]
    assert [e["data"]["message"]["id"] for e in responded] == [m["id"] for m in msgs]
    assert responded[0]["data"]["message"]["review"]["response"] == {"selectedOption": "ok"}

    # The cursor resumes: only what came after it, and a channel filter keeps to its channel.
    _, cursor = await read_all(owner.agent)
    later = await answered(owner, second["id"])

    async def resumed() -> list[dict[str, Any]] | None:
        events, _ = await read_all(owner.human, after=cursor, channel=second["id"])
        return events if any(e["type"] == "review:responded" for e in events) else None

    fresh = await eventually(resumed, 20.0, "the new answer after the cursor")
    assert {e["channelId"] for e in fresh} == {second["id"]}
    assert not set(ids) & {e["id"] for e in fresh}
    assert [e["data"]["message"]["id"] for e in fresh if e["type"] == "review:responded"] == [later["id"]]


async def test_a_channel_feed_is_for_its_owner_and_members(team: list[Owner]) -> None:
    owner, member, outsider = team
    agent = await owner.create_agent(webhookUrl="https://agent.example/hook?token=secret")
    added = await owner.human.post(f"/api/v1/agents/{agent['id']}/members", json={"email": member.email})
    assert added.status_code in (200, 201), added.text
    await answered(owner, agent["id"], webhookUrl="https://agent.example/override?token=secret")

    async def seen(client: httpx.AsyncClient) -> list[dict[str, Any]] | None:
        events, _ = await read_all(client, channel=agent["id"], limit=50)
        return events if any(e["type"] == "review:responded" for e in events) else None

    mine = await eventually(lambda: seen(owner.agent), 20.0, "the owner's channel feed")
    theirs = await eventually(lambda: seen(member.human), 20.0, "the member's channel feed")
    # Read later, the member's walk may hold more (delivery statuses keep coming): the same start.
    assert [e["id"] for e in theirs][: len(mine)] == [e["id"] for e in mine]
    # A member reads the message without the owner's webhook settings, as the API shows it to them.
    owners_view = next(e for e in mine if e["type"] == "review:responded")["data"]["message"]
    members_view = next(e for e in theirs if e["type"] == "review:responded")["data"]["message"]
    assert "token=secret" in str(owners_view)
    assert "token=secret" not in str(members_view)
    # The member's own account feed does not hold a channel shared with them.
    own, _ = await read_all(member.human, limit=50)
    assert agent["id"] not in {e["channelId"] for e in own}
    for client in (outsider.agent, outsider.human):
        resp = await client.get("/api/v1/feed", params={"channel": agent["id"]})
        assert resp.status_code == 404, resp.text


async def test_an_empty_page_waits_for_the_next_event(owner: Owner) -> None:
    agent = await owner.create_agent()
    _, cursor = await read_all(owner.agent, channel=agent["id"])
    params = {"channel": agent["id"], "wait": "20000", **({"after": cursor} if cursor else {})}
    # Held open while nothing happens; the message posted meanwhile is what it answers with.
    waiting = asyncio.create_task(owner.agent.get("/api/v1/feed", params=params, timeout=40))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    msg = await owner.post_message(agent["id"], text="anyone there?")
    resp = await waiting
    assert resp.status_code == 200, resp.text
    page = resp.json()
    assert [e["data"]["message"]["id"] for e in page["data"]] == [msg["id"]]
    assert page["nextCursor"] == page["data"][-1]["cursor"]


@pytest.fixture(scope="module")
async def reader(stack: RunningStack) -> AsyncIterator[Owner]:
    """One owner for the table of bad parameters (it only reads): not two Argon2 hashes a case."""
    async with stack.new_owners(1) as [one]:
        yield one


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"after": "not-a-cursor"}, "after"),
        ({"after": "12.evt_short"}, "after"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"wait": "30001"}, "wait"),
        ({"wait": "-1"}, "wait"),
        ({"types": "nope"}, "types"),
        ({"types": "review:nope"}, "types"),
        ({"types": "review:*,"}, "types"),
        ({"types": "*"}, "types"),
        ({"types": "review.responded"}, "types"),
        ({"types": ""}, "types"),
        ({"types": "a" * 501}, "types"),
    ],
)
async def test_bad_feed_parameters_are_named(reader: Owner, params: dict[str, str], field: str) -> None:
    resp = await reader.agent.get("/api/v1/feed", params=params)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["field"] == field


async def test_the_feed_keeps_the_types_asked_for_and_waits_for_them(owner: Owner) -> None:
    agent = await owner.create_agent()
    msg = await answered(owner, agent["id"])

    async def everything() -> list[dict[str, Any]] | None:
        events, _ = await read_all(owner.agent, channel=agent["id"], limit=50)
        return events if any(e["type"] == "review:responded" for e in events) else None

    every = await eventually(everything, 20.0, "the answer in the feed")
    answers, _ = await read_all(owner.agent, channel=agent["id"], types="review:*")
    assert [(e["type"], e["data"]["message"]["id"]) for e in answers] == [("review:responded", msg["id"])]
    both, _ = await read_all(owner.agent, channel=agent["id"], types="message:created, review:responded")
    assert [e["type"] for e in both] == ["message:created", "review:responded"]
    # Nothing of the type: an empty page whose cursor is past every event read, not the one given.
    resp = await owner.agent.get("/api/v1/feed", params={"channel": agent["id"], "types": "agent:status"})
    assert resp.json() == {"data": [], "nextCursor": every[-1]["cursor"]}

    # A filtered long-poll sleeps through the events of other types and answers with its own.
    params = {"channel": agent["id"], "types": "review:*", "wait": "25000", "after": every[-1]["cursor"]}
    waiting = asyncio.create_task(owner.agent.get("/api/v1/feed", params=params, timeout=40))
    other = await owner.post_message(agent["id"], text="not an answer")

    async def other_served() -> bool:
        events, _ = await read_all(owner.agent, after=every[-1]["cursor"], channel=agent["id"])
        return any(e["data"].get("message", {}).get("id") == other["id"] for e in events)

    await eventually(other_served, 20.0, "the other message served to an unfiltered read")
    assert not waiting.done()
    later = await answered(owner, agent["id"])
    resp = await waiting
    assert resp.status_code == 200, resp.text
    page = resp.json()
    assert [(e["type"], e["data"]["message"]["id"]) for e in page["data"]] == [
        ("review:responded", later["id"])
    ]


def _stored(agent: str, stored_at: datetime, event_id: str) -> dict[str, Any]:
    event = AgentStatusChanged(
        id=event_id,
        channel_id=agent,
        owner_id="usr_feed",
        data=AgentStatusData(agent_id=agent, status="busy", last_activity_at=stored_at),
    )
    doc = dict(events_document(event, timedelta(days=30)))
    doc["stored_at"] = stored_at
    return doc


async def test_an_event_stored_late_is_not_stepped_over(scratch: AsyncDatabase[Any]) -> None:
    """Ids sort by creation, not by storage: an event created first but stored after a page was
    read still comes on the next page (a cursor on ids would skip it for good); an event stored
    less than SETTLE ago waits."""
    db = cast(Any, scratch)
    await ensure_indexes(db)
    events = scratch["events"]
    now = datetime.now(UTC)
    # Ids as the clock made them: the earlier one sorts first (26 characters after the prefix).
    earlier_id, later_id = "evt_" + "1" * 26, "evt_" + "2" * 26
    await events.insert_one(_stored("agt_a", now - timedelta(seconds=30), later_id))
    first = await feed.page(db, {"owner_id": "usr_feed"}, "usr_feed", None)
    assert [e["id"] for e in first.data] == [later_id]
    await events.insert_one(_stored("agt_a", now - timedelta(seconds=20), earlier_id))
    # Stored "just now" (stamped a little ahead, so a slow run cannot let it settle): not yet.
    await events.insert_one(_stored("agt_a", datetime.now(UTC) + timedelta(seconds=10), new_id("evt")))
    second = await feed.page(db, {"owner_id": "usr_feed"}, "usr_feed", first.next_cursor)
    assert [e["id"] for e in second.data] == [earlier_id]
    assert earlier_id < later_id
    third = await feed.page(db, {"owner_id": "usr_feed"}, "usr_feed", second.next_cursor)
    assert (third.data, third.next_cursor) == ([], second.next_cursor)


async def test_a_filtered_page_moves_past_settled_events_only(scratch: AsyncDatabase[Any]) -> None:
    db = cast(Any, scratch)
    await ensure_indexes(db)
    now = datetime.now(UTC)
    first, second = "evt_" + "1" * 26, "evt_" + "2" * 26
    await scratch["events"].insert_many(
        [
            _stored("agt_a", now - timedelta(seconds=30), first),
            _stored("agt_a", now - timedelta(seconds=20), second),
            _stored("agt_a", datetime.now(UTC) + timedelta(seconds=10), new_id("evt")),  # not settled
        ]
    )
    scope = {"owner_id": "usr_feed"}
    everything = await feed.page(db, scope, "usr_feed", None)
    assert [e["id"] for e in everything.data] == [first, second]
    none = await feed.page(db, scope, "usr_feed", None, types=["message.created"])
    # Past both settled statuses, never past the one that may still have company behind it.
    assert (none.data, none.next_cursor) == ([], everything.next_cursor)
    # A full page of matches keeps its last match's cursor.
    one = await feed.page(db, scope, "usr_feed", None, limit=1, types=["agent.status"])
    assert [e["id"] for e in one.data] == [first]
    assert one.next_cursor == one.data[0]["cursor"]
    assert feed.parse_types("agent:*, review:voted") == ["review.voted", "agent.status"]


async def test_an_operator_event_is_the_owners_alone(scratch: AsyncDatabase[Any]) -> None:
    """A webhook incident names the owner's URL and its failures: a member the channel is shared
    with reads the channel's feed without it (and realtime sends it to the owner alone: the same
    ``shown_to``, tests/realtime/test_pieces.py)."""
    db = cast(Any, scratch)
    await ensure_indexes(db)
    settled = datetime.now(UTC) - timedelta(seconds=30)
    incident = EndpointDisabled(
        channel_id="agt_shared",
        owner_id="usr_feed",
        data=IncidentData(
            incident_id=new_id("inc"), url="https://hooks.example/x?token=secret", reason="410", since=settled
        ),
    )
    doc = dict(events_document(incident, timedelta(days=30)))
    doc["stored_at"] = settled
    await scratch["events"].insert_many([doc, _stored("agt_shared", settled, new_id("evt"))])
    scope = {"channel_id": "agt_shared"}
    owners = await feed.page(db, scope, "usr_feed", None)
    members = await feed.page(db, scope, "usr_member", None)
    assert sorted(e["type"] for e in owners.data) == ["agent:status", "operator:endpoint_disabled"]
    assert [e["type"] for e in members.data] == ["agent:status"]
    assert members.next_cursor == owners.next_cursor  # the member's cursor still moves past it
