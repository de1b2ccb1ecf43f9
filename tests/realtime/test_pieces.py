"""Table tests for the gateway's pure pieces (no servers needed)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sayso_service.cors import origin_checker

from sayso_common.events import (
    AgentStatusChanged,
    AgentStatusData,
    DeliveryStatusChanged,
    DeliveryStatusData,
    EndpointDisabled,
    IncidentData,
    MessageData,
    ReviewResponded,
    shown_to,
)
from sayso_common.membership import Reach
from sayso_common.views import MessageView, ReviewView
from sayso_realtime.fanout import SeenIds, Subscription
from sayso_realtime.history import RecentEvents, valid_event_id
from sayso_realtime.longpoll import answer, parse_timeout_ms
from sayso_realtime.payloads import event_name, payload
from sayso_realtime.sse import frame
from sayso_realtime.wait_endpoint import review_id_of
from sayso_realtime.waiters import Waiters

NOW = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, 30000),
        ("", 30000),
        ("5000", 5000),
        ("1", 1),
        ("30000", 30000),
        ("30001", 30000),
        ("999999999999", 30000),
        ("0", 30000),  # parseInt("0") || 30000
        ("-5", 30000),
        ("abc", 30000),
        ("1500ms", 1500),  # parseInt reads leading digits
        ("  250", 250),
        ("+700", 700),
        ("12.9", 12),
        ("1e3", 1),
        ("NaN", 30000),
    ],
)
def test_timeout_parses_like_placet(raw: str | None, expected: int) -> None:
    assert parse_timeout_ms(raw, 30000, 30000) == expected


def _message(status: str = "pending", response: Any = None) -> MessageView:
    return MessageView(
        id="msg_1",
        channel_id="agt_1",
        text="deploy?",
        created_at=NOW,
        review=ReviewView(type="approval", status=status, response=response),
    )


@pytest.mark.parametrize(
    ("status", "response", "timed_out", "expected"),
    [
        (
            "completed",
            {"selectedOption": "approve"},
            False,
            {"status": "completed", "response": {"selectedOption": "approve"}},
        ),
        ("expired", None, False, {"status": "expired", "response": None}),
        ("pending", None, True, {"status": "pending", "response": None, "timedOut": True}),
    ],
)
def test_answer_shape(status: str, response: Any, timed_out: bool, expected: dict[str, Any]) -> None:
    body = answer(_message(status, response), timed_out=timed_out)
    assert body["message"]["id"] == "msg_1"
    assert body["message"]["review"]["status"] == status
    assert {k: v for k, v in body.items() if k != "message"} == expected


@pytest.mark.parametrize(
    ("allowed", "origin", "host", "ok"),
    [
        ([], None, "edge:8000", True),  # scripts send no Origin
        ([], "http://edge:8000", "edge:8000", True),  # same origin
        ([], "https://edge:8000", "edge:8000", True),  # TLS ends at the edge
        ([], "http://evil.example", "edge:8000", False),
        (["https://app.example"], "https://app.example", "edge:8000", True),
        (["https://app.example"], "https://app.example.evil", "edge:8000", False),
        (["*"], "http://anything.example", "edge:8000", True),
        ([], "http://edge:8000", "", False),
    ],
)
def test_origin_check(allowed: list[str], origin: str | None, host: str, ok: bool) -> None:
    assert origin_checker(allowed)(origin, {"HTTP_HOST": host}) is ok


def _responded(
    message_id: str = "msg_1", owner: str = "usr_1", channel: str = "agt_1", event_id: str | None = None
) -> ReviewResponded:
    view = _message("completed", {"selectedOption": "approve"}).model_copy(update={"id": message_id})
    extra = {"id": event_id} if event_id else {}
    return ReviewResponded(channel_id=channel, owner_id=owner, data=MessageData(message=view), **extra)


def test_payloads_carry_the_api_view_and_the_event_id() -> None:
    event = _responded()
    assert event_name(event) == "review:responded"
    body = payload(event, event.owner_id)
    assert body["eventId"] == event.id
    assert body["id"] == "msg_1"
    assert body["channelId"] == "agt_1"
    assert body["createdAt"] == "2025-01-02T03:04:05.678000Z"
    status = AgentStatusChanged(
        channel_id="agt_1",
        owner_id="usr_1",
        data=AgentStatusData(agent_id="agt_1", status="busy", last_activity_at=NOW),
    )
    assert event_name(status) == "agent:status"
    assert payload(status, "usr_1") == {
        "agentId": "agt_1",
        "status": "busy",
        "message": None,
        "lastActivityAt": "2025-01-02T03:04:05.678000Z",
        "channelId": "agt_1",
        "eventId": status.id,
    }


def test_an_operator_event_carries_its_incident_in_camel_case() -> None:
    incident = IncidentData(
        incident_id="inc_1", endpoint_id="ep_1", url="https://hooks.example.test/x", reason="410", since=NOW
    )
    event = EndpointDisabled(channel_id="agt_1", owner_id="usr_1", data=incident)
    assert event_name(event) == "operator:endpoint_disabled"
    assert payload(event, "usr_1") == {
        "incidentId": "inc_1",
        "endpointId": "ep_1",
        "url": "https://hooks.example.test/x",
        "reason": "410",
        "since": "2025-01-02T03:04:05.678000Z",
        "deliveryId": None,
        "deliveryEventType": None,
        "channelId": "agt_1",
        "eventId": event.id,
    }


def test_an_operator_event_goes_to_the_owner_alone() -> None:
    """Members of a shared channel never see the owner's webhook settings: an incident's frame is
    empty for them (and the socket fan-out skips them by the same ``shown_to``)."""
    incident = IncidentData(incident_id="inc_1", url="https://hooks.example.test/x", reason="410", since=NOW)
    event = EndpointDisabled(channel_id="agt_1", owner_id="usr_1", data=incident)
    assert shown_to(event, "usr_1")
    assert not shown_to(event, "usr_member")
    assert "hooks.example.test" in frame(event, "usr_1")
    assert frame(event, "usr_member") == ""
    status = AgentStatusChanged(
        channel_id="agt_1",
        owner_id="usr_1",
        data=AgentStatusData(agent_id="agt_1", status="busy", last_activity_at=NOW),
    )
    assert shown_to(status, "usr_member")
    assert frame(status, "usr_member")


def test_a_delivery_status_names_the_delivered_event_apart_from_its_own_id() -> None:
    """eventId is the resume cursor (this status event's id); the event that was delivered is
    deliveredEventId (it used to be overwritten by the cursor and never reached a client)."""
    status = DeliveryStatusChanged(
        channel_id="agt_1",
        owner_id="usr_1",
        data=DeliveryStatusData(
            delivery_id="dlv_1",
            event_id="evt_delivered",
            event_type="review.responded",
            message_id="msg_1",
            url="https://example.test/hook",
            status="webhook_delivered",
            attempts=1,
            last_status_code=200,
        ),
    )
    body = payload(status, "usr_1")
    assert body["eventId"] == status.id != "evt_delivered"
    assert body["deliveredEventId"] == "evt_delivered"
    assert (body["deliveryId"], body["eventType"], body["status"]) == (
        "dlv_1",
        "review.responded",
        "webhook_delivered",
    )


async def test_a_waiter_registered_before_the_read_catches_an_early_outcome() -> None:
    waiters = Waiters()
    with waiters.register("msg_1") as outcome:
        assert len(waiters) == 1
        # The outcome lands "between the read and the wait": it is kept, not lost.
        assert waiters.wake(_responded()) == 1
        assert waiters.wake(_responded("msg_2")) == 0
        assert (await asyncio.wait_for(outcome, 1)).data.message.id == "msg_1"
    assert len(waiters) == 0
    assert waiters.wake(_responded()) == 0


def test_seen_ids_drop_repeats_and_forget_the_oldest() -> None:
    seen = SeenIds(capacity=2)
    assert seen.first_time("a")
    assert not seen.first_time("a")
    assert seen.first_time("b")
    assert seen.first_time("c")  # evicts "a"
    assert seen.first_time("a")


async def test_a_subscription_stops_taking_events_after_it_overflowed() -> None:
    sub = Subscription("usr_1", None, maxsize=2)
    events = [_responded(f"msg_{i}") for i in range(4)]
    for event in events:
        sub.offer(event)
    assert sub.overflowed.is_set()
    assert [e.id for e in sub.drain()] == [events[0].id, events[1].id]
    sub.offer(events[3])  # after a gap nothing more, or the consumer would skip the gap
    assert sub.drain() == []


def test_recent_events_after_a_cursor_include_later_consumed_smaller_ids() -> None:
    recent = RecentEvents(capacity=10)
    a, b, c = (_responded(f"msg_{i}", event_id=f"evt_{i:026d}") for i in range(3))
    for event in (a, c, b):  # b consumed after c although its id is smaller
        recent.add(event)
    recent.add(_responded("msg_x", owner="usr_other"))
    assert [e.id for e in recent.after(Reach("usr_1"), c.id)] == [b.id]
    assert [e.id for e in recent.after(Reach("usr_1"), a.id)] == [c.id, b.id]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("evt_01m83qm0t5nagyzxt7j467f9qx", True),
        ("evt_01M83QM0T5NAGYZXT7J467F9QX", False),
        ("msg_01m83qm0t5nagyzxt7j467f9qx", False),
        ("evt_short", False),
        ("", False),
        (None, False),
        (123, False),
        ('evt_01m83qm0t5nagyzxt7j467f9q"', False),
    ],
)
def test_event_id_cursor_validation(value: object, ok: bool) -> None:
    assert valid_event_id(value) is ok


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/v1/reviews/msg_1/wait", "msg_1"),
        ("/api/v1/reviews/msg_1/wait/", None),
        ("/api/v1/reviews//wait", None),
        ("/api/v1/reviews/a/b/wait", None),
        ("/api/v1/reviews/msg_1", None),
        ("/api/v1/events", None),
        ("/x/api/v1/reviews/msg_1/wait", None),
    ],
)
def test_only_long_poll_paths_go_to_the_plain_wait_endpoint(path: str, expected: str | None) -> None:
    assert review_id_of(path) == expected
