"""The rules of a channel's deletion as units: how its pending reviews close (``withdrawn``), what
the webhook bodies and the long-poll say about it, what a deleted agent keeps and for how long,
and which waiting events are moved out of its messages (sayso_common.deleted_channels)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest

from sayso_common import attempts, deleted_channels, review_state
from sayso_common.clock import utcnow
from sayso_common.documents import AgentDoc, MessageDoc
from sayso_common.events import ReviewExpired, parse_event
from sayso_common.webhook_bodies import body_for
from sayso_realtime.longpoll import answer
from tests.support.documents import pending_approval

APPROVE = {"selectedOption": "approve"}
OPTIONS = [{"id": "approve", "label": "Approve"}, {"id": "reject", "label": "Reject"}]


def _doc(**review: Any) -> MessageDoc:
    return pending_approval({"options": OPTIONS}, **review)


def _withdrawn(doc: MessageDoc) -> tuple[Mapping[str, Any], dict[str, Any], ReviewExpired]:
    """(filter, update, event) of the write that closes ``doc``'s review with its channel."""
    op = review_state.withdrawn(doc, utcnow())
    update = op._doc
    assert isinstance(update, dict)
    event = parse_event(update["$push"]["outbox"])
    assert isinstance(event, ReviewExpired)
    return op._filter, update, event


@pytest.mark.parametrize(
    "review",
    [
        {},
        {"on_expire": {"response": APPROVE}},  # the default would approve: it must not
        {"quorum": {"approvals": 2}, "votes": []},
        {"expires_at": utcnow() - timedelta(seconds=5)},  # overdue, the expirer not there yet
    ],
)
def test_a_deleted_channel_expires_its_review_with_a_reason_and_no_default(review: dict[str, Any]) -> None:
    doc = _doc(**review)
    where, update, event = _withdrawn(doc)
    assert where == {"_id": "msg_1", "review.status": "pending"}, "only a review still pending"
    assert update["$set"]["review.status"] == "expired"
    assert update["$set"]["review.expired_reason"] == "channel_deleted"
    assert "review.default_response" not in update["$set"]
    closed = event.data.message.review
    assert closed is not None
    assert (closed.status, closed.expired_reason, closed.default_response) == (
        "expired",
        "channel_deleted",
        None,
    )
    assert (event.channel_id, event.owner_id) == ("agt_1", "usr_owner")
    body = body_for(event)
    assert body is not None
    assert (body["event"], body["response"], body["reason"]) == ("review:expired", None, "channel_deleted")
    assert "defaultResponse" not in body
    assert list(body)[:4] == ["event", "channelId", "message_id", "review_type"]  # Placet's keys first
    long_poll = answer(event.data.message)
    assert (long_poll["status"], long_poll["response"]) == ("expired", None)
    assert long_poll["message"]["review"]["expiredReason"] == "channel_deleted"
    assert "defaultResponse" not in long_poll


def test_processa_receivers_read_a_deleted_channel_as_rejected_with_its_reason() -> None:
    _, _, event = _withdrawn(_doc(on_expire={"response": APPROVE}))
    body = body_for(event, "processa")
    assert body is not None
    assert (body["event"], body["draft"]["rejectionReason"]) == ("draft.rejected", "channel_deleted")


def test_a_deadline_expiry_names_no_reason() -> None:
    update = review_state.expired(_doc(on_expire={"response": APPROVE}), utcnow())._doc
    assert isinstance(update, dict)
    assert "review.expired_reason" not in update["$set"]
    event = parse_event(update["$push"]["outbox"])
    assert isinstance(event, ReviewExpired)
    body = body_for(event)
    assert body is not None
    assert "reason" not in body
    assert body["defaultResponse"] == APPROVE
    processa = body_for(event, "processa")
    assert processa is not None
    assert processa["draft"]["rejectionReason"] == "expired"


def _agent(**fields: Any) -> AgentDoc:
    return {
        "_id": "agt_1",
        "owner_id": "usr_owner",
        "name": "bot",
        "created_at": utcnow(),
        "webhook_url": "https://agent.example/hook",
        "webhook_enabled": True,
        "webhook_events": ["review:expired"],
        "webhook_headers_enc": "sealed-headers",
        "webhook_header_names": ["X-Token"],
        "webhook_auth_enc": "sealed-auth",
        "webhook_auth_username": "bot",
        "signing_secrets": [{"secret_enc": "sealed", "created_at": utcnow(), "expires_at": None}],
        "members": [{"user_id": "usr_m", "email": "m@x.test", "added_at": utcnow()}],
        "description": "a bot",
        "outbox": [{"id": "evt_1"}],
        **fields,  # type: ignore[typeddict-item]
    }


def test_a_deleted_agent_keeps_what_its_webhooks_need_and_nothing_else() -> None:
    now = utcnow()
    grave = deleted_channels.tombstone(_agent(), now, timedelta(days=3))
    assert set(grave) == {
        "_id", "owner_id", "name", "created_at", "webhook_url", "webhook_enabled", "webhook_events",
        "webhook_headers_enc", "webhook_auth_enc", "signing_secrets", "deleted_at", "expire_at",
    }  # fmt: skip
    assert grave["signing_secrets"][0]["secret_enc"] == "sealed"
    assert (grave["deleted_at"], grave["expire_at"]) == (now, now + timedelta(days=3))


@pytest.mark.parametrize(
    ("schedule", "kept"),
    [
        (None, timedelta(days=3)),
        ([], timedelta(days=3)),
        ([5, 300, 1800], timedelta(days=3)),
        # An agent retrying for 4 days keeps its settings past its last retry, jitter and slack.
        ([86_400] * 4, timedelta(days=5, hours=6)),
    ],
)
def test_a_deleted_agent_is_kept_past_its_own_retry_schedule(
    schedule: list[int] | None, kept: timedelta
) -> None:
    assert deleted_channels.retention_for(_agent(retry_schedule=schedule), timedelta(days=3)) == kept


def test_a_short_retention_still_covers_the_default_retry_schedule() -> None:
    # Retention set to an hour: an agent on the dispatcher's default schedule (~27.5 h of
    # retries) keeps its settings past them; one that asked for no retries keeps the hour.
    default_span = timedelta(seconds=sum(attempts.WEBHOOK_SCHEDULE))
    kept = deleted_channels.retention_for(_agent(retry_schedule=None), timedelta(hours=1))
    assert kept > default_span * 1.2 + timedelta(hours=1)
    assert deleted_channels.retention_for(_agent(retry_schedule=[]), timedelta(hours=1)) == timedelta(hours=6)


def test_waiting_events_are_moved_once_each_and_unreadable_entries_are_left() -> None:
    until = utcnow()
    holders: list[dict[str, Any]] = [
        {"_id": "msg_1", "outbox": [{"id": "evt_a", "type": "message.created"}, {"id": "evt_b"}]},
        {"_id": "msg_2", "outbox": []},
        {"_id": "msg_3"},
        {"_id": "msg_4", "outbox": [{"type": "no id"}, "not an object", {"id": 7}, {"id": "evt_c"}]},
    ]
    left = deleted_channels.left_events(holders, "agt_1", "usr_owner", until)
    assert [d["_id"] for d in left] == ["evt_a", "evt_b", "evt_c"]
    assert left[0] == {
        "_id": "evt_a",
        "channel_id": "agt_1",
        "owner_id": "usr_owner",
        "outbox": [{"id": "evt_a", "type": "message.created"}],
        "expire_at": until,
    }
