"""The review stores' contract: the same cases against the in-memory fake and real MongoDB, so
the fake the rule tests (test_reviewing.py) run over cannot drift from production. Reads,
guards (an answer to a closed review, a stale vote, a duplicate vote), one unit of work with a
remembered approval, answers and votes racing, and iteration numbering."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from sayso_api.schemas import RememberIn
from sayso_common import review_state
from sayso_common.errors import ConflictError, ErrorCode
from sayso_common.membership import Reach
from sayso_common.principals import Principal
from tests.conftest import Infra
from tests.support.review_stores import (
    CHANNEL,
    OWNER,
    START,
    Clock,
    MemoryWorld,
    MongoWorld,
    World,
    message,
    mongo_world,
    outbox_types,
    service,
    team,
)

APPROVE = {"selectedOption": "approve"}
REJECT = {"selectedOption": "reject"}


@pytest.fixture(scope="module")
async def mongo(infra: Infra) -> AsyncIterator[MongoWorld]:
    async with mongo_world(infra.mongo_url) as found:
        yield found


@pytest.fixture
def backing(request: pytest.FixtureRequest) -> MongoWorld | None:
    """The module's MongoDB for a ``mongo`` case (started only when one runs), else None."""
    if request.node.callspec.params.get("world") != "mongo":
        return None
    found: MongoWorld = request.getfixturevalue("mongo")
    return found


@pytest.fixture(params=["memory", "mongo"])
async def world(backing: MongoWorld | None) -> AsyncIterator[World]:
    if backing is None:
        yield MemoryWorld()
        return
    yield backing
    await backing.clear()


def user(user_id: str) -> Principal:
    return Principal(user_id, "user")


async def test_reads_are_scoped_like_the_api(world: World) -> None:
    await team(world, members=1)
    await world.put_agent({"_id": "agt_2", "owner_id": OWNER, "name": "other", "created_at": START})
    await world.put_message(message("msg_1", outbox=[{"type": "message.created"}], request_hash="h"))
    await world.put_message(message("msg_2", channel="agt_2"))
    store = world.store
    found = await store.message("msg_1")
    assert found is not None
    assert found["review"]["status"] == "pending"
    assert "outbox" not in found
    assert "request_hash" not in found
    assert await store.message("msg_x") is None
    assert (await store.message("msg_1", Reach(OWNER))) is not None
    assert await store.message("msg_1", Reach("usr_other")) is None
    assert (await store.message("msg_1", Reach("usr_m1", frozenset({CHANNEL})))) is not None
    assert await store.message("msg_2", Reach("usr_m1", frozenset({CHANNEL}))) is None
    assert await store.message("msg_2", Reach(OWNER, only=frozenset({CHANNEL}))) is None
    assert await store.message("msg_1", Reach(OWNER, only=frozenset({CHANNEL}))) is not None
    assert await store.message("msg_1", channel_id="agt_2") is None
    assert await store.message("msg_1", Reach(OWNER), CHANNEL) is not None
    assert await store.is_member(OWNER, CHANNEL, "usr_m1")
    assert not await store.is_member(OWNER, "agt_2", "usr_m1")
    assert not await store.is_member("usr_other", CHANNEL, "usr_m1")
    assert await store.reviewers(CHANNEL) == frozenset({OWNER, "usr_m1"})
    assert await store.reviewers("agt_none") is None
    assert await store.email("usr_m1") == "usr_m1@example.com"
    assert await store.email("usr_none") is None


async def test_an_answer_lands_once_and_a_stale_one_is_refused(world: World) -> None:
    await world.put_message(message("msg_1"))
    doc = await world.store.message("msg_1")
    assert doc is not None
    first = review_state.completed(doc, review_state.Answer(APPROVE, OWNER), START)
    second = review_state.completed(doc, review_state.Answer(REJECT, OWNER), START)
    assert await world.store.complete(first)
    assert not await world.store.complete(second)
    stored = await world.stored("msg_1")
    assert stored is not None
    assert (stored["review"]["status"], stored["review"]["response"]) == ("completed", APPROVE)
    assert outbox_types(stored) == ["review.responded"]


@pytest.mark.parametrize(
    ("why", "seconds", "fields"),
    [
        ("at the deadline", 3600, {}),
        ("after the deadline", 4000, {}),
        ("expired by the expirer", 0, {"status": "expired"}),
        ("answered", 0, {"status": "completed"}),
    ],
)
async def test_no_answer_lands_on_a_closed_review(
    world: World, why: str, seconds: float, fields: dict[str, Any]
) -> None:
    await world.put_message(message("msg_1", **fields))
    doc = await world.store.message("msg_1")
    assert doc is not None
    late = START + timedelta(seconds=seconds)
    assert not await world.store.complete(
        review_state.completed(doc, review_state.Answer(APPROVE, OWNER), late)
    )
    assert outbox_types(await world.stored("msg_1")) == []


async def test_an_answer_names_its_owner(world: World) -> None:
    await world.put_message(message("msg_1"))
    doc = await world.store.message("msg_1")
    assert doc is not None
    forged = review_state.completed(
        {**doc, "owner_id": "usr_other"}, review_state.Answer(APPROVE, OWNER), START
    )
    assert not await world.store.complete(forged)


async def test_a_remembered_approval_is_stored_with_its_answer_or_not_at_all(world: World) -> None:
    await team(world)
    tool: dict[str, Any] = {"metadata": {"tool": "deploy", "args": {"env": "prod"}}}
    await world.put_message(message("msg_1", **tool))
    await world.put_message(message("msg_2", status="completed", **tool))
    reviewing = service(world, Clock())
    remember = RememberIn(for_seconds=3600, scope="channel")
    view = await reviewing.respond(Reach(OWNER), "msg_1", OWNER, APPROVE, remember=remember)
    assert view.review is not None
    assert view.review.status == "completed"
    [entry] = await world.remembered()
    assert (entry["review_id"], entry["tool"], entry["created_by"]) == ("msg_1", "deploy", OWNER)
    doc = await world.store.message("msg_2")
    assert doc is not None
    completion = review_state.completed(doc, review_state.Answer(APPROVE, OWNER), START)
    assert not await world.store.complete(completion, {**entry, "_id": "rem_2"})
    assert [e["_id"] for e in await world.remembered()] == [entry["_id"]]


async def test_a_vote_lands_only_on_the_votes_it_was_counted_from(world: World) -> None:
    reviewers = frozenset(await team(world, members=2))
    await world.put_message(message("msg_1", approvals=2))
    read = await world.store.message("msg_1")
    assert read is not None

    def ballot(voter: str) -> review_state.Ballot:
        assert read is not None
        return review_state.voted(read, review_state.Vote(voter, f"{voter}@x", APPROVE), reviewers, START)

    assert await world.store.cast(ballot(OWNER))
    # Counted from the read before the owner's vote landed: refused, to be counted again.
    assert not await world.store.cast(ballot("usr_m1"))
    again = await world.store.message("msg_1")
    assert again is not None
    twice = review_state.voted(again, review_state.Vote(OWNER, "o@x", APPROVE), reviewers, START)
    assert not await world.store.cast(twice)  # the same reviewer, from a fresh read
    deciding = review_state.voted(again, review_state.Vote("usr_m1", "m@x", APPROVE), reviewers, START)
    assert deciding.outcome == "approved"
    assert await world.store.cast(deciding)
    stored = await world.stored("msg_1")
    assert stored is not None
    assert stored["review"]["status"] == "completed"
    assert [v["user_id"] for v in stored["review"]["votes"]] == [OWNER, "usr_m1"]
    assert outbox_types(stored) == ["review.voted", "review.voted", "review.responded"]
    closed = review_state.voted(stored, review_state.Vote("usr_m2", "x@x", APPROVE), reviewers, START)
    assert not await world.store.cast(closed)


async def test_a_review_without_votes_takes_no_vote(world: World) -> None:
    await world.put_message(message("msg_1"))
    doc = await world.store.message("msg_1")
    assert doc is not None
    doc["review"]["quorum"] = {"approvals": 1}
    ballot = review_state.voted(doc, review_state.Vote(OWNER, "o@x", APPROVE), frozenset({OWNER}), START)
    assert not await world.store.cast(ballot)


async def test_answers_racing_one_lands(world: World) -> None:
    await team(world)
    await world.put_message(message("msg_1"))
    reviewing = service(world, Clock())
    picks = [APPROVE if i % 2 else REJECT for i in range(20)]
    results = await asyncio.gather(
        *(reviewing.respond(user(OWNER), "msg_1", OWNER, pick) for pick in picks), return_exceptions=True
    )
    landed = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, ConflictError)]
    assert (len(landed), len(refused)) == (1, 19), results
    assert {r.code for r in refused} == {ErrorCode.ALREADY_RESPONDED}
    stored = await world.stored("msg_1")
    assert stored is not None
    assert landed[0].review is not None
    assert stored["review"]["response"] == landed[0].review.response
    assert outbox_types(stored) == ["review.responded"]


async def test_three_votes_racing_on_a_quorum_of_two(world: World) -> None:
    people = await team(world, members=2)
    await world.put_message(message("msg_1", approvals=2))
    reviewing = service(world, Clock())
    results = await asyncio.gather(
        *(reviewing.respond(user(p), "msg_1", p, APPROVE) for p in people), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, ConflictError)]
    assert [r.code for r in refused] == [ErrorCode.ALREADY_RESPONDED], results
    stored = await world.stored("msg_1")
    assert stored is not None
    assert (stored["review"]["status"], stored["review"]["response"]) == ("completed", APPROVE)
    assert len(stored["review"]["votes"]) == 2
    assert outbox_types(stored) == ["review.voted", "review.voted", "review.responded"]


async def test_iteration_numbers_follow_the_chain(world: World) -> None:
    reviewing = service(world, Clock())
    await world.put_message(message("msg_1", status="completed"))
    assert await reviewing.iteration("msg_1", CHANNEL) == ("msg_1", 2)
    await world.put_message(
        message("msg_2", status="expired", group_id="msg_1", iteration=2, iteration_of="msg_1")
    )
    assert await reviewing.iteration("msg_2", CHANNEL) == ("msg_1", 3)
    await world.put_message(message("msg_3", group_id="msg_1", iteration=3, iteration_of="msg_2"))
    # A branch from the root takes the next number of the whole group.
    assert await reviewing.iteration("msg_1", CHANNEL) == ("msg_1", 4)
    await world.put_message(message("msg_9", owner="usr_other", status="completed"))
    root = await world.stored("msg_1")
    assert root is not None
    assert (root.get("group_id"), root.get("iteration")) == ("msg_1", 1)
    group, chain = await reviewing.chain(OWNER, "msg_3", CHANNEL)
    assert (group, [(m.id, m.iteration) for m in chain]) == (
        "msg_1",
        [("msg_1", 1), ("msg_2", 2), ("msg_3", 3)],
    )
    alone, [only] = await reviewing.chain("usr_other", "msg_9", None)
    assert (alone, only.id, only.iteration) == ("msg_9", "msg_9", None)
