"""Table tests for the pure rules: circuit breaking, URL priority, body shape, signing headers.
Verdicts, retry spacing and Retry-After are sayso_common.attempts' (tests/test_attempts.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer
from standardwebhooks import Webhook

from sayso_common.documents import AgentDoc, SecretDoc
from sayso_common.events import MessageCreated, MessageData, ReviewExpired, ReviewResponded
from sayso_common.kafka import consumer_lag
from sayso_common.settings import CircuitPolicy
from sayso_common.signing_secrets import live
from sayso_common.views import CallbackView, MessageView, ReviewView
from sayso_common.webhook_signature import new_secret
from sayso_dispatcher.circuit import Circuit, State
from sayso_dispatcher.payload import body_for, render
from sayso_dispatcher.signing import signed_headers
from sayso_dispatcher.targets import target_for

NOW = datetime(2026, 4, 1, 14, 32, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _state(circuit: Circuit) -> State:
    # A call, not an attribute: mypy would otherwise narrow the state across record() calls.
    return circuit.state


def test_circuit_opens_on_failure_ratio_then_probes() -> None:
    clock = Clock()
    circuit = Circuit(CircuitPolicy(window=10, min_calls=5, failure_ratio=0.8, open_seconds=30), clock)
    for _ in range(4):
        assert circuit.allow()
        circuit.record(False)
    assert _state(circuit) is State.CLOSED  # too few calls to judge
    circuit.record(False)
    assert _state(circuit) is State.OPEN
    assert not circuit.allow()
    assert circuit.retry_in() == 30
    clock.now = 31
    assert circuit.allow()  # the probe
    assert _state(circuit) is State.HALF_OPEN
    assert not circuit.allow()  # one probe at a time
    circuit.record(False)
    assert _state(circuit) is State.OPEN
    clock.now = 62
    assert circuit.allow()
    circuit.record(True)
    assert _state(circuit) is State.CLOSED
    assert circuit.allow()


def test_an_uncounted_result_frees_the_probe_and_judges_nothing() -> None:
    # An attempt that never reached the host (an SSRF refusal, our own error) may be the one a
    # half-open circuit let through: it must give the probe back, or the host is refused for good.
    clock = Clock()
    circuit = Circuit(CircuitPolicy(window=10, min_calls=2, failure_ratio=1.0, open_seconds=30), clock)
    circuit.record(False)
    circuit.record(None)
    assert _state(circuit) is State.CLOSED  # one counted result: too few to judge
    assert list(circuit.results) == [False]
    circuit.record(False)
    assert _state(circuit) is State.OPEN
    clock.now = 31
    assert circuit.allow()
    circuit.record(None)
    assert _state(circuit) is State.HALF_OPEN
    assert circuit.allow()  # the next request is the probe
    circuit.record(True)
    assert _state(circuit) is State.CLOSED


def test_circuit_stays_closed_below_ratio() -> None:
    circuit = Circuit(CircuitPolicy(window=10, min_calls=5, failure_ratio=0.8), Clock())
    for ok in [True, False, False, True, False, False, True, False, False, True]:
        circuit.record(ok)
    assert _state(circuit) is State.CLOSED


def _view(**kw: Any) -> MessageView:
    review = kw.pop("review", None)
    return MessageView(id="msg_1", channel_id="agt_1", text="t", created_at=NOW, review=review, **kw)


REVIEW = ReviewView(
    type="approval",
    status="completed",
    response={"selectedOption": "approve", "comment": "ship it"},
    responded_at=NOW,
    callback=CallbackView(url="https://cb.example/hook", method="PUT"),
)
AGENT = {
    "webhook_url": "https://agent.example/hook",
    "webhook_enabled": True,
    "webhook_events": ["review:responded", "review:expired"],
}


def _responded(**kw: Any) -> ReviewResponded:
    return ReviewResponded(
        channel_id="agt_1", owner_id="usr_1", data=MessageData(message=_view(review=REVIEW, **kw))
    )


@pytest.mark.parametrize(
    ("message_url", "agent", "url", "source", "method"),
    [
        ("https://msg.example/h", AGENT, "https://msg.example/h", "message", "POST"),
        (None, AGENT, "https://agent.example/hook", "agent", "POST"),
        (None, {**AGENT, "webhook_enabled": False}, "https://cb.example/hook", "callback", "PUT"),
        (None, {**AGENT, "webhook_events": ["review:expired"]}, "https://cb.example/hook", "callback", "PUT"),
        (None, {**AGENT, "webhook_url": None}, "https://cb.example/hook", "callback", "PUT"),
        (None, None, "https://cb.example/hook", "callback", "PUT"),
    ],
)
def test_url_priority(
    message_url: str | None, agent: dict[str, Any] | None, url: str, source: str, method: str
) -> None:
    target = target_for(_responded(webhook_url=message_url), cast("AgentDoc | None", agent), "sealed")
    assert target is not None
    assert (target.url, target.source, target.method) == (url, source, method)


def test_no_target_without_any_url() -> None:
    review = REVIEW.model_copy(update={"callback": None})
    event = ReviewResponded(channel_id="agt_1", owner_id="u", data=MessageData(message=_view(review=review)))
    assert target_for(event, None) is None


@pytest.mark.parametrize(
    ("sender", "events", "delivered"),
    [
        ("user", ["message:created"], True),
        ("webhook", ["review:responded", "message:created"], True),
        ("user", ["review:responded", "review:expired"], False),  # not subscribed
        ("agent", ["message:created"], False),  # the agent's own message is not echoed
    ],
)
def test_message_created_only_for_subscribers(sender: str, events: list[str], delivered: bool) -> None:
    event = MessageCreated(
        channel_id="agt_1", owner_id="u", data=MessageData(message=_view(sender_type=sender))
    )
    target = target_for(event, cast(AgentDoc, {**AGENT, "webhook_events": events}))
    assert (target is not None) is delivered


def test_placet_bodies() -> None:
    responded = body_for(_responded())
    assert responded == {
        "event": "review:responded",
        "channelId": "agt_1",
        "message_id": "msg_1",
        "review_type": "approval",
        "response": {"selectedOption": "approve", "comment": "ship it"},
        "responded_at": "2026-04-01T14:32:00.000Z",
    }
    expired = ReviewExpired(
        channel_id="agt_1",
        owner_id="u",
        occurred_at=NOW + timedelta(hours=1),
        data=MessageData(message=_view(review=REVIEW.model_copy(update={"status": "expired"}))),
    )
    body = body_for(expired)
    assert body is not None
    assert body["event"] == "review:expired"
    assert body["expired_at"] == "2026-04-01T15:32:00.000Z"
    assert render({"a": "é", "b": [1]}) == '{"a":"é","b":[1]}'


def test_signed_headers_verify_with_standardwebhooks_during_rotation() -> None:
    old, new = new_secret(), new_secret()
    body = render({"event": "review:responded"}).encode()
    ts = int(time.time())
    headers = signed_headers("evt_1", ts, body, [new, old], {"X-Team": "a", "webhook-id": "forged"})
    assert headers["webhook-id"] == "evt_1"
    assert headers["X-Team"] == "a"
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(body, headers) == {"event": "review:responded"}


def test_live_secrets_drop_expired_ones() -> None:
    records: list[SecretDoc] = [
        {"secret_enc": "a", "created_at": NOW - timedelta(days=3), "expires_at": NOW - timedelta(days=1)},
        {"secret_enc": "b", "created_at": NOW - timedelta(days=2), "expires_at": NOW + timedelta(hours=1)},
        {"secret_enc": "c", "created_at": NOW, "expires_at": None},
    ]
    assert [r["secret_enc"] for r in live(records, NOW)] == ["c", "b"]


async def test_consumer_lag_reports_every_subscribed_topic_even_without_partitions() -> None:
    # After a rebalance leaves this replica none of a topic's partitions, its lag there is 0, not
    # the last value it saw (the gauge kept that value for good before).
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")
    consumer.subscribe(["review.responded", "review.expired"])
    try:
        assert await consumer_lag([consumer]) == {"review.responded": 0, "review.expired": 0}
    finally:
        await consumer.stop()
