"""A receiver's Retry-After that is not ASCII delta-seconds or an HTTP-date (``²`` is a digit to
``str.isdigit()``, and ``float()`` refuses it) reads as absent: the attempt is an ordinary 503,
retried on the schedule, never an error of ours that ends the delivery."""

from __future__ import annotations

from tests.dispatcher.flows import answer, answered, sequence, settled
from tests.support.receiver import Receiver
from tests.support.stack import Owner


async def test_an_unreadable_retry_after_is_absent(owner: Owner, receiver: Receiver) -> None:
    receiver.routes["/odd"] = sequence(answer(503, headers={"Retry-After": "²"}), answer(200))
    agent = await owner.create_agent(webhookUrl=receiver.url("/odd"), webhookRetrySchedule=[1])
    msg = await answered(owner, agent["id"])
    await receiver.wait_for("/odd", 2, timeout=30)
    delivery = await settled(owner, msg["id"], "delivered")
    assert [a["statusCode"] for a in delivery["attempts"]] == [503, 200]
    assert delivery["attempts"][0]["errorKind"] == "http_status"
