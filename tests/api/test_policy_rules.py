"""Table tests for the review policies' pure pieces (no server): which answers approve, when a
quorum is decided, the vote and expiry builders, and what webhooks and long-polls carry."""

from __future__ import annotations

from typing import Any

import pytest

from sayso_common import quorum, review_state
from sayso_common.clock import utcnow
from sayso_common.documents import MessageDoc, VoteDoc
from sayso_common.events import ReviewExpired, ReviewResponded, parse_event
from sayso_common.reviews import normalise_payload
from sayso_common.views import message_view
from sayso_common.webhook_bodies import body_for
from sayso_realtime.longpoll import answer
from tests.support.documents import pending_approval

DEFAULT = normalise_payload("approval", {})
STYLED = normalise_payload(
    "approval",
    {
        "options": [
            {"id": "ship", "label": "Ship", "style": "success"},
            {"id": "go", "label": "Go", "style": "primary"},
            {"id": "hold", "label": "Hold", "style": "warning"},
            {"id": "kill", "label": "Kill", "style": "danger"},
        ]
    },
)
ALL_APPROVING = normalise_payload(
    "approval", {"options": [{"id": "yes", "label": "Yes"}, {"id": "ok", "label": "OK", "style": "ghost"}]}
)
NONE_APPROVING = normalise_payload(
    "approval", {"options": [{"id": "a", "label": "A"}, {"id": "b", "label": "B", "style": "danger"}]}
)


@pytest.mark.parametrize(
    ("payload", "response", "approving"),
    [
        (DEFAULT, {"selectedOption": "approve"}, True),
        (DEFAULT, {"selectedOption": "approve", "comment": "fine"}, True),
        (DEFAULT, {"selectedOption": "reject"}, False),
        (DEFAULT, {"_dismissed": True}, False),
        (DEFAULT, {"selectedOption": ["approve"]}, False),
        (DEFAULT, None, False),
        (STYLED, {"selectedOption": "ship"}, True),  # style success
        (STYLED, {"selectedOption": "go"}, True),  # style primary
        (STYLED, {"selectedOption": "hold"}, False),
        (STYLED, {"selectedOption": "kill"}, False),
        (ALL_APPROVING, {"selectedOption": "ok"}, True),  # by id, whatever its style
    ],
)
def test_which_answers_approve(payload: dict[str, Any], response: Any, approving: bool) -> None:
    assert quorum.approves(payload, response) is approving


@pytest.mark.parametrize(
    ("payload", "decidable"),
    [(DEFAULT, True), (STYLED, True), (ALL_APPROVING, False), (NONE_APPROVING, False)],
)
def test_a_quorum_needs_an_approving_and_a_rejecting_option(payload: dict[str, Any], decidable: bool) -> None:
    assert quorum.can_decide(payload) is decidable


@pytest.mark.parametrize(
    ("required", "approvals", "undecided", "outcome"),
    [
        (2, 0, 3, None),
        (2, 1, 1, None),
        (2, 2, 0, "approved"),
        (2, 2, 5, "approved"),  # decided at once, the others need not vote
        (2, 1, 0, "rejected"),  # nobody left to approve
        (2, 0, 1, "rejected"),  # one left cannot make two
        (1, 0, 0, "rejected"),
        (3, 0, 2, "rejected"),  # a quorum larger than the reviewers left
        (1, 1, 0, "approved"),
    ],
)
def test_when_a_quorum_is_decided(required: int, approvals: int, undecided: int, outcome: str | None) -> None:
    assert quorum.decide(required, approvals, undecided) == outcome


def _vote(user: str, option: str) -> VoteDoc:
    return {
        "user_id": user,
        "email": f"{user}@x.test",
        "response": {"selectedOption": option},
        "at": utcnow(),
    }


@pytest.mark.parametrize(
    ("votes", "reviewers", "outcome"),
    [
        ([_vote("a", "approve")], {"a", "b", "c"}, None),
        ([_vote("a", "approve"), _vote("b", "approve")], {"a", "b", "c"}, "approved"),
        ([_vote("a", "reject"), _vote("b", "reject")], {"a", "b", "c"}, "rejected"),
        ([_vote("a", "reject")], {"a", "b", "c"}, None),
        # A removed member's vote still counts; only reviewers now can still vote.
        ([_vote("gone", "approve"), _vote("a", "approve")], {"a", "b"}, "approved"),
        # Two reviewers, a quorum of three: the first vote decides.
        ([_vote("a", "approve")], {"a", "b"}, None),
    ],
)
def test_quorum_outcome_from_votes(votes: list[VoteDoc], reviewers: set[str], outcome: str | None) -> None:
    assert quorum.outcome(2, DEFAULT, votes, reviewers) == outcome


def _doc(required: int, votes: list[VoteDoc] | None = None, **review: Any) -> MessageDoc:
    return pending_approval(DEFAULT, quorum={"approvals": required}, votes=votes or [], **review)


def test_an_open_vote_is_recorded_with_one_voted_event() -> None:
    doc = _doc(2)
    ballot = review_state.voted(
        doc,
        review_state.Vote("usr_a", "a@x.test", {"selectedOption": "approve"}),
        frozenset({"usr_owner", "usr_a"}),
        utcnow(),
    )
    assert ballot.outcome is None
    assert ballot.filter["review.status"] == "pending"
    assert ballot.filter["review.votes"] == {"$size": 0}  # no other vote landed since the read
    assert ballot.filter["review.votes.user_id"] == {"$ne": "usr_a"}
    assert "review.status" not in ballot.update["$set"]
    events = [parse_event(e) for e in ballot.update["$push"]["outbox"]["$each"]]
    assert [e.type for e in events] == ["review.voted"]
    assert ballot.view.review is not None
    assert ballot.view.review.status == "pending"
    assert [v.email for v in ballot.view.review.votes or []] == ["a@x.test"]


@pytest.mark.parametrize(
    ("before", "option", "reviewers", "status", "final"),
    [
        # The second approval decides: the decider's answer is the review's response.
        ([_vote("usr_owner", "approve")], "approve", {"usr_owner", "usr_a", "usr_b"}, "approved", "approve"),
        # Two rejections of three reviewers: the third cannot make two approvals.
        ([_vote("usr_owner", "reject")], "reject", {"usr_owner", "usr_a", "usr_b"}, "rejected", "reject"),
        # Only two reviewers, one rejected: the deciding vote approves, the review is rejected with
        # the first option that does not approve.
        ([_vote("usr_owner", "reject")], "approve", {"usr_owner", "usr_a"}, "rejected", "reject"),
    ],
)
def test_the_deciding_vote_completes_the_review_in_the_same_write(
    before: list[VoteDoc], option: str, reviewers: set[str], status: str, final: str
) -> None:
    doc = _doc(2, before)
    vote = review_state.Vote("usr_a", "a@x.test", {"selectedOption": option})
    ballot = review_state.voted(doc, vote, frozenset(reviewers), utcnow())
    assert ballot.outcome == status
    assert ballot.filter["review.votes"] == {"$size": 1}
    assert ballot.update["$set"]["review.status"] == "completed"
    assert ballot.update["$set"]["review.response"] == {"selectedOption": final}
    assert ballot.update["$set"]["review.responded_by"] == "usr_a"
    events = [parse_event(e) for e in ballot.update["$push"]["outbox"]["$each"]]
    assert [e.type for e in events] == ["review.voted", "review.responded"]
    responded = events[1]
    assert isinstance(responded, ReviewResponded)
    assert responded.data.message.review is not None
    assert len(responded.data.message.review.votes or []) == 2
    body = body_for(responded)
    assert body is not None
    assert body["response"] == {"selectedOption": final}
    assert [v["response"]["selectedOption"] for v in body["votes"]] == [
        before[0]["response"]["selectedOption"],
        option,
    ]
    processa = body_for(responded, "processa")
    assert processa is not None
    assert processa["event"] == ("draft.approved" if status == "approved" else "draft.rejected")


def _expiry(doc: MessageDoc) -> dict[str, Any]:
    """The update document of the expirer's write."""
    update = review_state.expired(doc, utcnow())._doc
    assert isinstance(update, dict)
    return update


def _expired_event(doc: MessageDoc) -> ReviewExpired:
    event = parse_event(_expiry(doc)["$push"]["outbox"])
    assert isinstance(event, ReviewExpired)
    return event


def test_expiry_applies_the_default_and_keeps_status_expired() -> None:
    deny = {"selectedOption": "reject", "comment": "nobody answered"}
    doc = _doc(1, on_expire={"response": deny})
    update = _expiry(doc)
    assert update["$set"]["review.status"] == "expired"
    assert update["$set"]["review.default_response"] == deny
    event = _expired_event(doc)
    review = event.data.message.review
    assert review is not None
    assert review.status == "expired"
    assert review.default_response == deny
    body = body_for(event)
    assert body is not None
    assert body["response"] is None  # as Placet: an expired review has no response
    assert body["defaultResponse"] == deny
    assert list(body)[-2:] == ["defaultResponse", "votes"]  # Placet's keys first, unchanged
    long_poll = answer(event.data.message)
    assert (long_poll["status"], long_poll["response"], long_poll["defaultResponse"]) == (
        "expired",
        None,
        deny,
    )


@pytest.mark.parametrize("default", [{"selectedOption": "approve"}, {"selectedOption": "reject"}])
def test_processa_receivers_read_an_expiry_as_rejected_whatever_the_default(default: dict[str, Any]) -> None:
    body = body_for(_expired_event(_doc(1, on_expire={"response": default})), "processa")
    assert body is not None
    assert body["event"] == "draft.rejected"
    assert body["draft"]["rejectionReason"] == "expired"


def test_expiry_without_default_is_unchanged() -> None:
    doc = _doc(1)
    del doc["review"]["quorum"], doc["review"]["votes"]
    assert "review.default_response" not in _expiry(doc)["$set"]
    body = body_for(_expired_event(doc))
    assert body is not None
    assert "defaultResponse" not in body
    assert "votes" not in body
    assert "defaultResponse" not in answer(message_view(doc))
