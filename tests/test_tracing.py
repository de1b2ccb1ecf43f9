"""W3C traceparent from the API request through the event (outbox, Kafka, events collection) to
the dispatcher's webhook request."""

from __future__ import annotations

import logging

import pytest

from sayso_common import tracing
from sayso_common.observability import JsonFormatter
from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack, eventually

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("header", "valid"),
    [
        (PARENT, True),
        (PARENT.upper(), True),
        (f"00-{'0' * 32}-00f067aa0ba902b7-01", False),  # all-zero trace id
        (f"00-{TRACE}-{'0' * 16}-01", False),
        (f"01-{TRACE}-00f067aa0ba902b7-01", False),  # only version 00 is read
        ("garbage", False),
        ("", False),
        (None, False),
    ],
)
def test_parse(header: str | None, valid: bool) -> None:
    assert (tracing.parse(header) is not None) is valid


def test_child_keeps_the_trace_and_logs_carry_it() -> None:
    kid = tracing.child(PARENT)
    assert tracing.trace_id(kid) == TRACE
    assert kid != PARENT
    assert tracing.parse(tracing.new()) is not None
    token = tracing.CURRENT.set(kid)
    try:
        line = JsonFormatter("test").format(logging.makeLogRecord({"msg": "hello"}))
    finally:
        tracing.CURRENT.reset(token)
    assert f'"trace_id": "{TRACE}"' in line


async def test_a_review_can_be_followed_from_request_to_webhook(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    agent = await owner.create_agent(webhookUrl=receiver.url("/traced"))
    msg = await owner.post_message(agent["id"], review={"type": "approval", "payload": {}})
    answered = await owner.human.post(
        f"/api/v1/reviews/{msg['id']}/respond",
        json={"response": {"selectedOption": "approve"}},
        headers={"traceparent": PARENT},
    )
    assert answered.status_code == 200
    (hook,) = await receiver.wait_for("/traced")
    sent = hook.headers["traceparent"]
    assert tracing.trace_id(sent) == TRACE
    assert sent != PARENT  # the webhook request is a span of its own
    async with stack.mongo() as client:

        async def stored() -> dict[str, object] | None:
            found: dict[str, object] | None = await client.sayso.events.find_one(
                {"type": "review.responded", "data.message.id": msg["id"]}
            )
            return found

        event = await eventually(stored, what="the review.responded event in the events collection")
    assert tracing.trace_id(str(event["traceparent"])) == TRACE
