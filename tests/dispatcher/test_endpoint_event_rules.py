"""Table tests for the event types endpoints may ask for (issue #31): names and groups
(``delivery:*``), what each type's filter reads and each format's body holds, the rule that
keeps ``delivery:status`` from feeding itself, and (on a scratch database of the real MongoDB)
which consumed records the dispatcher parses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from sayso_service.consumers import kept_values

from sayso_common.documents import DeliveryDoc, EndpointDoc
from sayso_common.endpoints import (
    ENDPOINT_EVENTS,
    EventTypeError,
    check_pattern,
    compile_endpoint_filter,
    deliverable,
    expand,
    filter_document,
    message_id_of,
    type_matches,
    wanted,
)
from sayso_common.events import (
    ApprovalRemembered,
    ApprovalRevoked,
    Event,
    MessageData,
    MessageUpdated,
    RememberedData,
    ReviewVoted,
    VoteData,
    delivery_status_event,
    wire_name,
)
from sayso_common.topics import ALL_EVENT_TYPES
from sayso_common.views import MessageView, ReviewView, VoteView
from sayso_common.webhook_bodies import body_for
from sayso_dispatcher.consumer import AGENT_TOPICS, TOPICS, keeper
from sayso_dispatcher.endpoints import EndpointDirectory

NOW = datetime(2026, 4, 1, 14, 32, tzinfo=UTC)
STAMP = "2026-04-01T14:32:00.000Z"

MESSAGE = MessageView(
    id="msg_1", channel_id="agt_1", text="Deploy?", created_at=NOW, metadata={"env": "prod"}
)
VOTE = VoteView(user_id="usr_2", email="b@x", response={"selectedOption": "ok"}, voted_at=NOW)
VOTED = MessageView(
    id="msg_1",
    channel_id="agt_1",
    created_at=NOW,
    review=ReviewView(type="approval", status="pending", votes=[VOTE]),
)
DELIVERY = cast(
    DeliveryDoc,
    {
        "_id": "dlv_1",
        "channel_id": "agt_1",
        "owner_id": "usr_1",
        "event_id": "evt_answer",
        "event_type": "review.responded",
        "message_id": "msg_1",
        "url": "https://hooks.example/a",
        "endpoint_id": "ep_9",
        "attempt_count": 2,
        "last_status_code": 500,
    },
)
REMEMBERED = RememberedData(
    channel_id="agt_1",
    remembered_id="rem_1",
    tool="deploy",
    args_digest="sha256:ab",
    scope="channel",
    expires_at=NOW,
    actor="usr_1",
)


def _status(about: DeliveryDoc) -> Event:
    return delivery_status_event(about, "webhook_failed", NOW)


def _of_status(event: Event) -> DeliveryDoc:
    """A delivery of ``event`` (itself a delivery.status): what its own status would be about."""
    return cast(DeliveryDoc, {**DELIVERY, "_id": "dlv_2", "event_id": event.id, "event_type": event.type})


UPDATED = MessageUpdated(
    channel_id="agt_1", owner_id="usr_1", occurred_at=NOW, data=MessageData(message=MESSAGE)
)
VOTED_EVENT = ReviewVoted(
    channel_id="agt_1", owner_id="usr_1", occurred_at=NOW, data=VoteData(message=VOTED, vote=VOTE)
)
STATUS = _status(DELIVERY)
REMEMBER = ApprovalRemembered(channel_id="agt_1", owner_id="usr_1", occurred_at=NOW, data=REMEMBERED)
REVOKE = ApprovalRevoked(channel_id="agt_1", owner_id="usr_1", occurred_at=NOW, data=REMEMBERED)


@pytest.mark.parametrize(
    ("pattern", "ok"),
    [
        ("review:responded", True),
        ("review:voted", True),
        ("delivery:status", True),
        ("agent:status", True),
        ("approval:revoked", True),
        ("message:updated", True),
        ("review:*", True),
        ("delivery:*", True),
        ("approval:*", True),
        ("review:nope", False),
        ("nope:*", False),
        ("*", False),
        ("review:", False),
        ("review", False),
        ("Review:responded", False),
        ("review.responded", False),  # the topic's spelling, not the webhook's
        ("review:**", False),
        ("", False),
    ],
)
def test_an_event_type_is_a_name_or_a_group(pattern: str, ok: bool) -> None:
    if ok:
        assert check_pattern(pattern) == pattern
        return
    with pytest.raises(EventTypeError) as caught:
        check_pattern(pattern)
    assert "delivery:*" in str(caught.value)  # says what is accepted


@pytest.mark.parametrize(
    ("patterns", "name", "expected"),
    [
        (["review:*"], "review:voted", True),
        (["review:*"], "review:responded", True),
        (["review:*"], "message:created", False),
        (["delivery:*"], "delivery:status", True),
        (["delivery:status"], "delivery:status", True),
        (["review:responded"], "review:expired", False),
        (["message:created", "agent:*"], "agent:status", True),
        ([], "review:responded", False),
    ],
)
def test_a_group_covers_every_type_of_its_kind(patterns: list[str], name: str, expected: bool) -> None:
    assert type_matches(patterns, name) is expected


def test_the_feed_expands_groups_over_every_stored_type() -> None:
    known = tuple(wire_name(t) for t in ALL_EVENT_TYPES)
    assert expand(["review:*", "agent:status"], known) == [
        "review:responded",
        "review:expired",
        "review:voted",
        "agent:status",
    ]
    assert set(ENDPOINT_EVENTS) <= set(known)


def test_a_status_about_a_status_delivery_goes_nowhere() -> None:
    assert deliverable(STATUS)  # about a review's delivery: sent
    about_status = _status(_of_status(STATUS))
    assert not deliverable(about_status)  # about the delivery of a status: the loop stops here
    assert not deliverable(_status(_of_status(about_status)))
    for event in (UPDATED, VOTED_EVENT, REMEMBER, REVOKE):
        assert deliverable(event)
    endpoint = cast(
        EndpointDoc,
        {
            "_id": "ep_1",
            "owner_id": "usr_1",
            "channel_id": None,
            "url": "https://e/",
            "event_types": ["delivery:*"],
        },
    )
    assert wanted(endpoint, "delivery:status", None, lambda: filter_document(STATUS))


@pytest.mark.parametrize(
    ("event", "spec", "expected"),
    [
        (STATUS, {"delivery.eventType": "review:responded", "delivery.status": "webhook_failed"}, True),
        (STATUS, {"delivery.endpointId": "ep_9", "delivery.lastStatusCode": {"$gte": 500}}, True),
        (STATUS, {"delivery.status": "webhook_delivered"}, False),
        (UPDATED, {"message.metadata.env": "prod", "event": "message:updated"}, True),
        (VOTED_EVENT, {"vote.response.selectedOption": "ok", "message.review.votes.0.email": "b@x"}, True),
        (VOTED_EVENT, {"vote.userId": "usr_3"}, False),
        (REMEMBER, {"approval.tool": "deploy", "approval.scope": "channel"}, True),
        (REVOKE, {"event": "approval:remembered"}, False),
    ],
)
def test_each_type_is_filtered_over_its_document(event: Event, spec: dict[str, Any], expected: bool) -> None:
    compiled = compile_endpoint_filter(spec)
    assert compiled is not None
    doc = filter_document(event)
    assert doc is not None
    assert compiled.matches(doc) is expected


def test_the_bodies_of_endpoint_only_events() -> None:
    delivery = {
        "id": "dlv_1", "eventId": "evt_answer", "eventType": "review:responded", "messageId": "msg_1",
        "endpointId": "ep_9", "url": "https://hooks.example/a", "status": "webhook_failed", "attempts": 2,
        "lastStatusCode": 500, "lastError": None, "nextAttemptAt": None,
    }  # fmt: skip
    approval = {
        "id": "rem_1", "tool": "deploy", "argsDigest": "sha256:ab", "scope": "channel", "runId": None,
        "expiresAt": STAMP, "actor": "usr_1",
    }  # fmt: skip
    head = {"channelId": "agt_1"}
    assert body_for(STATUS) == {"event": "delivery:status", **head, "delivery": delivery, "changed_at": STAMP}
    assert body_for(REMEMBER) == {
        "event": "approval:remembered",
        **head,
        "approval": approval,
        "remembered_at": STAMP,
    }
    assert body_for(REVOKE) == {
        "event": "approval:revoked",
        **head,
        "approval": approval,
        "revoked_at": STAMP,
    }
    updated = body_for(UPDATED)
    assert updated is not None
    assert (updated["event"], updated["message_id"], updated["message"]["text"], updated["updated_at"]) == (
        "message:updated", "msg_1", "Deploy?", STAMP,
    )  # fmt: skip
    # As the REST API writes a vote (and review:responded's ``votes``).
    vote = {
        "userId": "usr_2",
        "email": "b@x",
        "response": {"selectedOption": "ok"},
        "votedAt": "2026-04-01T14:32:00Z",
    }
    assert body_for(VOTED_EVENT) == {
        "event": "review:voted", **head, "message_id": "msg_1", "review_type": "approval", "vote": vote,
        "votes": [vote], "voted_at": STAMP,
    }  # fmt: skip
    for event in (STATUS, UPDATED, VOTED_EVENT, REMEMBER, REVOKE):
        placet = body_for(event)
        # Processa has no such events: its receivers get Placet's body; standard wraps it.
        assert body_for(event, "processa") == placet
        assert body_for(event, "standard") == {"type": event.type, "timestamp": STAMP, "data": placet}
        # The filter reads the body's object under the same key.
        document = filter_document(event)
        assert document is not None
        assert placet is not None
        for key in ("delivery", "approval", "vote"):
            if key in placet:
                assert document[key] == placet[key]


def test_the_delivery_of_a_vote_or_an_update_is_listed_under_its_message() -> None:
    assert message_id_of(UPDATED) == message_id_of(VOTED_EVENT) == "msg_1"
    assert message_id_of(STATUS) is None  # a status delivery is not the message's own
    assert message_id_of(REMEMBER) is None


# --- what the dispatcher parses ----------------------------------------------------------------


@dataclass
class _Record:
    topic: str
    value: bytes


@dataclass
class _Batch:
    raw_message: tuple[_Record, ...]


async def test_records_of_types_no_endpoint_wants_are_dropped_unparsed(scratch: AsyncDatabase[Any]) -> None:
    endpoints = EndpointDirectory(cast(Any, scratch), str)
    keep = keeper(endpoints)
    assert keep("delivery.status")  # not read yet: everything is parsed
    await endpoints.read_types()
    assert [t for t in TOPICS if keep(t)] == list(AGENT_TOPICS)
    await scratch["endpoints"].insert_many(
        [
            {
                "_id": "ep_1",
                "owner_id": "u",
                "channel_id": None,
                "event_types": ["delivery:*", "review:voted"],
            },
            {
                "_id": "ep_2",
                "owner_id": "u",
                "channel_id": None,
                "event_types": ["agent:status"],
                "disabled": True,
            },
            {"_id": "ep_3", "owner_id": "u", "channel_id": None},  # the default types
        ]
    )
    await endpoints.read_types()
    assert [t for t in TOPICS if keep(t)] == [*AGENT_TOPICS, "review.voted", "delivery.status"]

    decode = kept_values(keep, {f"p.{t}": t for t in TOPICS})
    batch = _Batch(tuple(_Record(f"p.{t}", t.encode()) for t in TOPICS))
    assert await decode(cast(Any, batch)) == [
        t.encode() for t in (*AGENT_TOPICS, "review.voted", "delivery.status")
    ]
