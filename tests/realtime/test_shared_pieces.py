"""Shared channels in the gateway's pieces (no server): which subscriptions an event reaches as
channels are shared and taken back, what a resuming member is replayed, what a vote's payload
carries, and what a member's payloads leave out."""

from __future__ import annotations

from typing import Any

import pytest

from sayso_common.clock import utcnow
from sayso_common.events import MessageData, ReviewVoted, VoteData
from sayso_common.membership import Reach
from sayso_common.views import CallbackView, VoteView, seen_by
from sayso_realtime.fanout import Fanout
from sayso_realtime.history import RecentEvents
from sayso_realtime.payloads import event_name, payload
from sayso_realtime.waiters import Waiters
from tests.realtime.test_pieces import _responded


def _fanout() -> Fanout:
    return Fanout(Waiters(), RecentEvents(100))


async def test_shared_channels_reach_a_members_subscription_until_taken_back() -> None:
    fanout = _fanout()
    member = fanout.subscribe("usr_member", None, 10, frozenset({"agt_shared"}))
    narrowed = fanout.subscribe("usr_member", frozenset({"agt_shared"}), 10, frozenset({"agt_shared"}))
    owner = fanout.subscribe("usr_owner", None, 10)
    shared = _responded("msg_1", owner="usr_owner", channel="agt_shared")
    private = _responded("msg_2", owner="usr_owner", channel="agt_private")
    own = _responded("msg_3", owner="usr_member", channel="agt_mine")
    for event in (shared, private, own):
        await fanout.publish(event)
    assert [e.id for e in member.drain()] == [shared.id, own.id]
    assert [e.id for e in narrowed.drain()] == [shared.id]
    assert [e.id for e in owner.drain()] == [shared.id, private.id]

    fanout.reshare(member, frozenset())
    fanout.reshare(narrowed, frozenset())
    await fanout.publish(_responded("msg_4", owner="usr_owner", channel="agt_shared"))
    assert member.drain() == []
    assert narrowed.drain() == []
    fanout.reshare(member, frozenset({"agt_private"}))
    later = _responded("msg_5", owner="usr_owner", channel="agt_private")
    await fanout.publish(later)
    assert [e.id for e in member.drain()] == [later.id]
    fanout.unsubscribe(member)
    await fanout.publish(_responded("msg_6", owner="usr_owner", channel="agt_private"))
    assert member.drain() == []


def test_a_resuming_member_is_replayed_its_shared_channels_only() -> None:
    recent = RecentEvents(capacity=10)
    first = _responded("msg_0", owner="usr_member", channel="agt_mine", event_id=f"evt_{0:026d}")
    shared = _responded("msg_1", owner="usr_owner", channel="agt_shared", event_id=f"evt_{1:026d}")
    private = _responded("msg_2", owner="usr_owner", channel="agt_private", event_id=f"evt_{2:026d}")
    for event in (first, shared, private):
        recent.add(event)
    assert [e.id for e in recent.after(Reach("usr_member", frozenset({"agt_shared"})), first.id)] == [
        shared.id
    ]
    assert recent.after(Reach("usr_member"), first.id) == []


def test_a_vote_event_carries_the_message_and_the_vote() -> None:
    message = _responded().data.message
    vote = VoteView(
        user_id="usr_a", email="a@x.test", response={"selectedOption": "approve"}, voted_at=utcnow()
    )
    event = ReviewVoted(channel_id="agt_1", owner_id="usr_1", data=VoteData(message=message, vote=vote))
    body = payload(event, event.owner_id)
    assert event_name(event) == "review:voted"
    assert (body["id"], body["eventId"]) == (message.id, event.id)
    assert body["vote"]["email"] == "a@x.test"
    assert body["vote"]["response"] == {"selectedOption": "approve"}


HOOK = "https://hooks.example/in?token=s3cret"
CALLBACK = CallbackView(url="https://hooks.example/cb?token=s3cret")


@pytest.mark.parametrize(
    ("reader", "webhook_url", "callback"),
    [
        ("usr_1", HOOK, CALLBACK),  # the owner, signed in or through the agent's key
        ("usr_member", None, None),  # a member of the channel
    ],
)
def test_a_member_reads_no_webhook_settings(reader: str, webhook_url: str | None, callback: Any) -> None:
    event = _responded()
    review = event.data.message.review
    assert review is not None
    message = event.data.message.model_copy(
        update={"webhook_url": HOOK, "review": review.model_copy(update={"callback": CALLBACK})}
    )
    event = event.model_copy(update={"data": MessageData(message=message)})
    seen = seen_by(message, event.owner_id, reader)
    assert (seen.webhook_url, seen.review and seen.review.callback) == (webhook_url, callback)
    assert (seen.text, seen.review and seen.review.response) == (message.text, review.response)
    body = payload(event, reader)
    assert body["webhookUrl"] == webhook_url
    assert body["review"]["callback"] == (callback and callback.model_dump(mode="json"))
    # The event itself is untouched: the owner's sockets and the webhook still get it all.
    assert event.data.message.webhook_url == HOOK
