"""The review answer path's rules as units, over the in-memory store (no servers): validation by
review type, answers after a review closed, quorum counting and closing, duplicate and refused
votes, who may answer, and iteration chains. test_review_store_contract.py keeps the fake true
to MongoDB; the stack tests (test_respond.py, test_review_policies.py, test_messages.py) keep
one end-to-end test of each behaviour."""

from __future__ import annotations

from typing import Any

import pytest

from sayso_api.schemas import RememberIn
from sayso_common.errors import ConflictError, DomainError, ErrorCode, ForbiddenError, NotFoundError
from sayso_common.membership import Reach
from sayso_common.principals import Principal
from sayso_common.views import MessageView
from tests.support.review_stores import (
    CHANNEL,
    OWNER,
    Clock,
    MemoryWorld,
    message,
    outbox_types,
    service,
    team,
)

APPROVE = {"selectedOption": "approve"}
REJECT = {"selectedOption": "reject"}
FORM = {
    "fields": [
        {"name": "reason", "label": "Reason", "type": "text", "required": True},
        {"name": "budget", "label": "Budget", "type": "number", "max": 100},
    ]
}
PICK = {"mode": "multi", "items": [{"id": "a", "label": "A"}, {"id": "b", "label": "B"}]}

# (review type, payload, good response, bad response, field at fault)
BY_TYPE: list[tuple[str, dict[str, Any], Any, Any, str]] = [
    ("approval", {}, {"selectedOption": "approve", "comment": "ship it"}, {"selectedOption": "nope"}, "response.selectedOption"),
    ("approval", {}, APPROVE, {"selectedOption": "approve", "why": 1}, "response.why"),
    ("approval", {}, REJECT, "approve", "response"),
    ("approval", {"dismissLabel": "Skip"}, {"_dismissed": True}, {"_dismissed": False}, "response.selectedOption"),
    ("selection", PICK, {"selectedIds": ["a", "b"]}, {"selectedIds": ["c"]}, "response.selectedIds"),
    ("selection", {**PICK, "mode": "single"}, {"selectedIds": ["b"]}, {"selectedIds": ["a", "b"]}, "response.selectedIds"),
    ("form", FORM, {"reason": "because", "budget": 12.5}, {"budget": 5}, "response.reason"),
    ("form", FORM, {"reason": "because"}, {"reason": "x", "budget": 101}, "response.budget"),
    ("text-input", {}, {"text": "free words"}, {"text": ""}, "response.text"),
    ("text-input", {"maxLength": 3}, {"text": "abc"}, {"text": "abcd"}, "response.text"),
    ("freeform", {}, {"any": {"json": [1, 2]}}, "not an object", "response"),
]  # fmt: skip


def user(user_id: str, **fields: Any) -> Principal:
    return Principal(user_id, "user", **fields)


async def world_with(*docs: Any, members: int = 0) -> MemoryWorld:
    world = MemoryWorld()
    await team(world, members=members)
    for doc in docs:
        await world.put_message(doc)
    return world


def status_of(view: MessageView) -> str:
    assert view.review is not None
    return view.review.status


@pytest.mark.parametrize(("kind", "payload", "good", "bad", "field"), BY_TYPE)
async def test_a_response_is_validated_by_its_review_type(
    kind: str, payload: dict[str, Any], good: Any, bad: Any, field: str
) -> None:
    world = await world_with(message("msg_1", kind, payload))
    reviewing = service(world, Clock())
    with pytest.raises(DomainError) as refused:
        await reviewing.respond(user(OWNER), "msg_1", OWNER, bad)
    assert (refused.value.code, refused.value.field) == (ErrorCode.INVALID_RESPONSE, field)
    assert world.store.messages["msg_1"]["review"]["status"] == "pending"
    view = await reviewing.respond(user(OWNER), "msg_1", OWNER, good)
    assert view.review is not None
    assert (view.review.status, view.review.responded_by) == ("completed", OWNER)
    assert outbox_types(world.store.messages["msg_1"]) == ["review.responded"]


@pytest.mark.parametrize(
    ("advance", "fields", "code"),
    [
        (0, {"status": "completed"}, ErrorCode.ALREADY_RESPONDED),
        (0, {"status": "expired"}, ErrorCode.REVIEW_EXPIRED),
        (3600, {}, ErrorCode.REVIEW_EXPIRED),  # at the deadline, before the expirer came by
        (7200, {}, ErrorCode.REVIEW_EXPIRED),
    ],
)
async def test_no_answer_after_a_review_closed(
    advance: float, fields: dict[str, Any], code: ErrorCode
) -> None:
    world = await world_with(message("msg_1", **fields))
    clock = Clock()
    clock.advance(advance)
    for response in (APPROVE, {"selectedOption": "nope"}):
        # A closed review is told as closed, even to a response that would not fit it.
        with pytest.raises(ConflictError) as refused:
            await service(world, clock).respond(user(OWNER), "msg_1", OWNER, response)
        assert refused.value.code is code
    assert outbox_types(world.store.messages["msg_1"]) == []


async def test_the_first_answer_wins_and_the_second_is_told_why() -> None:
    world = await world_with(message("msg_1", "text-input"))
    reviewing = service(world, Clock())
    first = await reviewing.respond(user(OWNER), "msg_1", OWNER, {"text": "one"}, feedback="more please")
    assert first.review is not None
    assert first.review.feedback == "more please"
    with pytest.raises(ConflictError) as second:
        await reviewing.respond(user(OWNER), "msg_1", OWNER, {"text": "two"})
    assert second.value.code is ErrorCode.ALREADY_RESPONDED
    assert world.store.messages["msg_1"]["review"]["response"] == {"text": "one"}


# (approvals required, members besides the owner, votes in order, status after each vote, final response)
QUORUMS: list[tuple[int, int, list[dict[str, str]], list[str], dict[str, str] | None]] = [
    (1, 0, [APPROVE], ["completed"], APPROVE),
    (2, 1, [APPROVE, APPROVE], ["pending", "completed"], APPROVE),
    (2, 2, [APPROVE, APPROVE], ["pending", "completed"], APPROVE),
    (2, 2, [REJECT, APPROVE, APPROVE], ["pending", "pending", "completed"], APPROVE),
    # Two approvals still possible after one rejection among three; none after two.
    (2, 2, [REJECT, REJECT], ["pending", "completed"], REJECT),
    (3, 2, [APPROVE, APPROVE, REJECT], ["pending", "pending", "completed"], REJECT),
    (3, 2, [APPROVE, REJECT], ["pending", "completed"], REJECT),
    # More approvals than the channel has reviewers: rejected by the first vote, even an approving one.
    (3, 1, [APPROVE], ["completed"], REJECT),
    (2, 0, [APPROVE], ["completed"], REJECT),
]


@pytest.mark.parametrize(("required", "members", "votes", "statuses", "final"), QUORUMS)
async def test_a_quorum_is_counted_and_closes_at_its_threshold(
    required: int,
    members: int,
    votes: list[dict[str, str]],
    statuses: list[str],
    final: dict[str, str] | None,
) -> None:
    world = await world_with(message("msg_1", approvals=required), members=members)
    people = [OWNER, *(f"usr_m{i}" for i in range(1, members + 1))]
    reviewing = service(world, Clock())
    seen = [
        status_of(await reviewing.respond(user(p), "msg_1", p, v))
        for p, v in zip(people, votes, strict=False)
    ]
    assert seen == statuses
    review = world.store.messages["msg_1"]["review"]
    assert review["response"] == final
    assert [v["response"] for v in review["votes"]] == votes
    assert outbox_types(world.store.messages["msg_1"]) == ["review.voted"] * len(votes) + ["review.responded"]
    if len(people) > len(votes):
        with pytest.raises(ConflictError) as late:
            await reviewing.respond(user(people[len(votes)]), "msg_1", people[len(votes)], APPROVE)
        assert late.value.code is ErrorCode.ALREADY_RESPONDED


async def test_a_reviewer_votes_once() -> None:
    world = await world_with(message("msg_1", approvals=2), members=2)
    reviewing = service(world, Clock())
    await reviewing.respond(user(OWNER), "msg_1", OWNER, REJECT)
    with pytest.raises(ConflictError) as again:
        await reviewing.respond(user(OWNER), "msg_1", OWNER, APPROVE)
    assert again.value.code is ErrorCode.ALREADY_VOTED
    assert len(world.store.messages["msg_1"]["review"]["votes"]) == 1


@pytest.mark.parametrize(
    ("extra", "error", "code", "field"),
    [
        ({"feedback": "put it in a comment"}, DomainError, ErrorCode.INVALID_RESPONSE, "feedback"),
        ({"modified_file_ids": {"a": "b"}}, DomainError, ErrorCode.INVALID_RESPONSE, "modifiedFileIds"),
        ({"remember": RememberIn(for_seconds=60, scope="channel")}, DomainError, ErrorCode.INVALID_REMEMBER, "remember"),
        ({"may_vote": False}, ForbiddenError, ErrorCode.VOTE_NOT_ALLOWED, "response"),
    ],
)  # fmt: skip
async def test_a_vote_is_a_persons_response_alone(
    extra: dict[str, Any], error: type[DomainError], code: ErrorCode, field: str
) -> None:
    world = await world_with(message("msg_1", approvals=1))
    with pytest.raises(error) as refused:
        await service(world, Clock()).respond(user(OWNER), "msg_1", OWNER, APPROVE, **extra)
    assert (refused.value.code, refused.value.field) == (code, field)
    assert world.store.messages["msg_1"]["review"]["votes"] == []


async def test_who_may_answer() -> None:
    world = await world_with(
        message("msg_1"), message("msg_2"), message("msg_3", None), message("msg_4"), members=1
    )
    reviewing = service(world, Clock())
    for stranger in (
        user("usr_other"),
        Principal("usr_m1", "api_key"),
        user(OWNER, channels=frozenset({"agt_9"})),
    ):
        with pytest.raises(NotFoundError):
            await reviewing.respond(stranger, "msg_1", stranger.owner_id, APPROVE)
    assert status_of(await reviewing.respond(user("usr_m1"), "msg_1", "usr_m1", APPROVE)) == "completed"
    ready = Reach(OWNER, only=frozenset({CHANNEL}))
    assert status_of(await reviewing.respond(ready, "msg_2", OWNER, APPROVE)) == "completed"
    with pytest.raises(NotFoundError) as no_review:
        await reviewing.respond(user(OWNER), "msg_3", OWNER, APPROVE)
    assert no_review.value.what == "review"
    world.store.agents[CHANNEL]["members"] = []  # removed: answers nothing from now on
    with pytest.raises(NotFoundError):
        await reviewing.respond(user("usr_m1"), "msg_4", "usr_m1", APPROVE)


async def test_a_refused_remember_answers_nothing() -> None:
    world = await world_with(message("msg_1"))
    with pytest.raises(DomainError) as refused:
        await service(world, Clock()).respond(
            user(OWNER), "msg_1", OWNER, APPROVE, remember=RememberIn(for_seconds=60, scope="channel")
        )
    assert refused.value.code is ErrorCode.INVALID_REMEMBER
    assert world.store.messages["msg_1"]["review"]["status"] == "pending"
    assert world.store.remembered == []


@pytest.mark.parametrize(
    ("target", "channel", "code"),
    [
        (message("msg_t"), CHANNEL, ErrorCode.ITERATION_NOT_ALLOWED),  # still pending
        (message("msg_t", None), CHANNEL, ErrorCode.ITERATION_NOT_ALLOWED),  # no review at all
        (message("msg_t", status="completed"), "agt_2", ErrorCode.INVALID_ITERATION),  # another channel
        (message("msg_x", status="completed"), CHANNEL, ErrorCode.INVALID_ITERATION),  # no such message
    ],
)
async def test_only_a_closed_review_of_the_channel_is_iterated_on(
    target: Any, channel: str, code: ErrorCode
) -> None:
    world = await world_with(target)
    with pytest.raises(DomainError) as refused:
        await service(world, Clock()).iteration("msg_t", channel)
    assert (refused.value.code, refused.value.field) == (code, "iterationOf")


async def test_an_iteration_chain_numbers_every_follow_up_in_its_group() -> None:
    world = await world_with(message("msg_1", status="expired"))
    reviewing = service(world, Clock())
    assert await reviewing.iteration(None, CHANNEL) is None
    numbers = []
    previous = "msg_1"
    for i in range(2, 5):
        group, number = await reviewing.iteration(previous, CHANNEL) or ("", 0)
        numbers.append((group, number))
        previous = f"msg_{i}"
        await world.put_message(message(previous, status="completed", group_id=group, iteration=number))
    assert numbers == [("msg_1", 2), ("msg_1", 3), ("msg_1", 4)]
    assert await reviewing.iteration("msg_2", CHANNEL) == ("msg_1", 5)  # a branch: next in the group
    group, chain = await reviewing.chain(OWNER, "msg_1", CHANNEL)
    assert [(m.id, m.iteration, m.iteration_group_id) for m in chain] == [
        (f"msg_{i}", i, "msg_1") for i in range(1, 5)
    ]
    with pytest.raises(NotFoundError):
        await reviewing.chain("usr_other", "msg_1", None)
    with pytest.raises(NotFoundError):
        await reviewing.chain(OWNER, "msg_1", "agt_2")
