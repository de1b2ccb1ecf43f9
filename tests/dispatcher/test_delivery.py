"""Webhook delivery end to end on the shared stack: API -> outbox -> Kafka -> dispatcher -> a
real local receiver. Loopback is allow-listed there (SAYSO_DISPATCHER_ALLOWED_NETWORKS)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from standardwebhooks import Webhook

from tests.dispatcher.flows import answer, answered, deliveries, gaps, sequence, settled
from tests.support.receiver import Receiver
from tests.support.stack import Owner, eventually


async def test_signed_placet_body_verifies_and_status_is_mirrored(owner: Owner, receiver: Receiver) -> None:
    agent = await owner.create_agent(webhookUrl=receiver.url("/signed"), webhookHeaders={"X-Team": "blue"})
    msg = await answered(owner, agent["id"])
    [got] = await receiver.wait_for("/signed")

    payload = Webhook(agent["webhookSecret"]).verify(got.body, got.headers)
    assert payload == {
        "event": "review:responded",
        "channelId": agent["id"],
        "message_id": msg["id"],
        "review_type": "approval",
        "response": {"selectedOption": "ok"},
        "responded_at": payload["responded_at"],
        "actionDigest": msg["review"]["actionDigest"],  # Sayso's addition, after Placet's keys
    }
    assert list(payload)[-1] == "actionDigest"
    assert payload["responded_at"].endswith("Z")
    assert got.headers["x-team"] == "blue"
    assert got.headers["content-type"] == "application/json"

    delivery = await settled(owner, msg["id"], "delivered")
    assert delivery["eventId"] == got.headers["webhook-id"]
    assert delivery["status"] == "webhook_delivered"
    [attempt] = delivery["attempts"]
    assert attempt["statusCode"] == 200
    assert attempt["body"] == '{"ok": true}'

    async def message_status() -> str | None:
        status = (await owner.agent.get(f"/api/v1/messages/{msg['id']}")).json()["deliveryStatus"]
        return status if status == "webhook_delivered" else None

    await eventually(message_status, what="deliveryStatus mirrored on the message")
    # The agent's ACK is the last word: a later re-send does not overwrite it.
    assert (await owner.agent.post(f"/api/v1/messages/{msg['id']}/ack")).status_code == 200
    assert (await owner.agent.post(f"/api/v1/messages/{msg['id']}/webhook/retry")).status_code == 202
    await receiver.wait_for("/signed", 2)
    await eventually(lambda: _attempts(owner, msg["id"], 2), what="second attempt recorded")
    final = (await owner.agent.get(f"/api/v1/messages/{msg['id']}")).json()
    assert final["deliveryStatus"] == "agent_received"


async def _attempts(owner: Owner, message_id: str, count: int) -> bool:
    found = await deliveries(owner, message_id)
    return bool(found) and found[0]["attemptCount"] >= count and found[0]["state"] != "pending"


async def test_url_priority(owner: Owner, receiver: Receiver) -> None:
    callback = {"url": receiver.url("/cb"), "method": "PUT", "headers": {"X-Callback": "yes"}}
    with_default = await owner.create_agent(webhookUrl=receiver.url("/default"))
    without_default = await owner.create_agent()

    per_message = await answered(
        owner, with_default["id"], webhookUrl=receiver.url("/msg"), review={"callback": callback}
    )
    default = await answered(owner, with_default["id"], review={"callback": callback})
    legacy = await answered(owner, without_default["id"], review={"callback": callback})

    [to_msg] = await receiver.wait_for("/msg")
    [to_default] = await receiver.wait_for("/default")
    [to_cb] = await receiver.wait_for("/cb")
    assert to_msg.json()["message_id"] == per_message["id"]
    assert to_default.json()["message_id"] == default["id"]
    assert to_cb.json()["message_id"] == legacy["id"]
    assert to_cb.method == "PUT"
    assert to_cb.headers["x-callback"] == "yes"
    # The callback is signed with the channel's secret like any other delivery.
    Webhook(without_default["webhookSecret"]).verify(to_cb.body, to_cb.headers)
    # First match wins: one delivery per event, to one URL.
    for msg, path in ((per_message, "/msg"), (default, "/default"), (legacy, "/cb")):
        [delivery] = await deliveries(owner, msg["id"])
        assert delivery["url"] == receiver.url(path)


async def test_retries_follow_the_schedule_then_fail(owner: Owner, receiver: Receiver) -> None:
    receiver.routes["/flaky"] = answer(503, "down for maintenance")
    agent = await owner.create_agent(webhookUrl=receiver.url("/flaky"), webhookRetrySchedule=[1, 2])
    msg = await answered(owner, agent["id"])
    requests = await receiver.wait_for("/flaky", 3, timeout=30)
    first, second = gaps(requests)
    # Schedule 1 s then 2 s, each ±20 % jitter (upper bounds loose: the machine is shared).
    assert 0.75 <= first <= 4.0
    assert 1.55 <= second <= 6.0
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    assert len({r.body for r in requests}) == 1

    delivery = await settled(owner, msg["id"], "failed")
    assert delivery["status"] == "webhook_failed"
    assert delivery["attemptCount"] == 3
    assert [a["statusCode"] for a in delivery["attempts"]] == [503, 503, 503]
    assert delivery["attempts"][0]["body"] == "down for maintenance"

    # The message's copy of the status is a second write after the outcome's: it follows shortly.
    async def mirrored() -> bool:
        got = await owner.agent.get(f"/api/v1/messages/{msg['id']}")
        return bool(got.json()["deliveryStatus"] == "webhook_failed")

    await eventually(mirrored, what="the message shows webhook_failed")


async def test_retry_after_is_honoured(owner: Owner, receiver: Receiver) -> None:
    receiver.routes["/busy"] = sequence(answer(429, headers={"Retry-After": "3"}), answer(200))
    agent = await owner.create_agent(webhookUrl=receiver.url("/busy"), webhookRetrySchedule=[1])
    msg = await answered(owner, agent["id"])
    requests = await receiver.wait_for("/busy", 2, timeout=30)
    # The schedule alone would retry after ~1 s; the receiver asked for 3.
    assert gaps(requests)[0] >= 2.9
    delivery = await settled(owner, msg["id"], "delivered")
    assert [a["statusCode"] for a in delivery["attempts"]] == [429, 200]


async def test_gone_disables_the_default_url(owner: Owner, receiver: Receiver) -> None:
    receiver.routes["/gone"] = answer(410)
    agent = await owner.create_agent(webhookUrl=receiver.url("/gone"), webhookRetrySchedule=[1, 1])
    msg = await answered(owner, agent["id"])
    await receiver.wait_for("/gone")
    delivery = await settled(owner, msg["id"], "failed")
    assert delivery["attemptCount"] == 1

    state = (await owner.agent.get(f"/api/v1/agents/{agent['id']}")).json()
    assert state["webhookEnabled"] is False
    assert "410" in state["webhookDisabledReason"]

    # Disabled: the next response falls through to the legacy callback.
    nxt = await answered(owner, agent["id"], review={"callback": {"url": receiver.url("/fallback")}})
    [fallback] = await receiver.wait_for("/fallback")
    assert fallback.json()["message_id"] == nxt["id"]
    assert len(receiver.at("/gone")) == 1

    # Re-enabled by the owner: the default URL is used again.
    receiver.routes["/gone"] = answer(200)
    patched = await owner.agent.patch(f"/api/v1/agents/{agent['id']}", json={"webhookEnabled": True})
    assert patched.json()["webhookEnabled"] is True
    await answered(owner, agent["id"])
    await receiver.wait_for("/gone", 2)


async def test_client_errors_are_not_retried(owner: Owner, receiver: Receiver) -> None:
    # Four refusals at once, one agent each: the whole 4xx table (which are retried, which not,
    # which count against a circuit) is tests/test_attempts.py's; this shows the dispatcher acts
    # on it: failed after one attempt, no retry when the schedule's second comes.
    statuses = (400, 401, 404, 422)

    async def refused(status: int) -> tuple[int, dict[str, Any]]:
        path = f"/refuse-{status}"
        receiver.routes[path] = answer(status, "no thanks")
        agent = await owner.create_agent(webhookUrl=receiver.url(path), webhookRetrySchedule=[1, 1])
        msg = await answered(owner, agent["id"])
        return status, await settled(owner, msg["id"], "failed")

    for status, delivery in await asyncio.gather(*(refused(s) for s in statuses)):
        assert delivery["attemptCount"] == 1
        assert delivery["attempts"][0]["statusCode"] == status
        assert delivery["lastError"] == f"HTTP {status}"
    await asyncio.sleep(1.5)  # a retry would have come after ~1 s
    assert {s: len(receiver.at(f"/refuse-{s}")) for s in statuses} == dict.fromkeys(statuses, 1)


async def test_redirects_are_not_followed(owner: Owner, receiver: Receiver) -> None:
    # Loopback is allow-listed here, so this shows the redirect is refused as such.
    receiver.routes["/moved"] = answer(302, headers={"Location": "http://127.0.0.1:1/internal"})
    agent = await owner.create_agent(webhookUrl=receiver.url("/moved"), webhookRetrySchedule=[1])
    msg = await answered(owner, agent["id"])
    delivery = await settled(owner, msg["id"], "failed")
    assert delivery["attemptCount"] == 1
    attempt = delivery["attempts"][0]
    assert attempt["statusCode"] == 302
    assert attempt["errorKind"] == "redirect_not_followed"
    assert "127.0.0.1:1/internal" in attempt["error"]


async def test_ssrf_refusals_fail_at_once(owner: Owner) -> None:
    # Which URLs are refused, and why, is sayso_common.ssrf's table (tests/dispatcher/test_ssrf.py,
    # every URL once sent here among them); this shows the dispatcher applies it with the stack's
    # allow-list (127.0.0.0/8 only): no request, failed at once, the reason recorded.
    cases = {
        "http://0xa9fea9fe/latest/meta-data/": "link-local",  # 169.254.169.254 spelt in hex
        "http://[::1]:9/hook": "loopback",  # IPv6 loopback: outside the allow-list
    }
    agent = await owner.create_agent(webhookRetrySchedule=[1, 1])
    messages = await asyncio.gather(*(answered(owner, agent["id"], webhookUrl=url) for url in cases))
    for msg, reason in zip(messages, cases.values(), strict=True):
        delivery = await settled(owner, msg["id"], "failed")
        assert delivery["attemptCount"] == 1
        attempt = delivery["attempts"][0]
        assert attempt["errorKind"] == "ssrf_refused"
        assert reason in attempt["error"]
        assert attempt["statusCode"] is None


async def test_human_messages_reach_subscribed_agents(owner: Owner, receiver: Receiver) -> None:
    agent = await owner.create_agent(
        webhookUrl=receiver.url("/chat"), webhookEvents=["review:responded", "message:created"]
    )
    own = await owner.post_message(agent["id"], text="from the agent itself")
    human = await owner.human.post(
        "/api/v1/messages/user", json={"channelId": agent["id"], "text": "hello agent"}
    )
    assert human.status_code == 201, human.text
    [got] = await receiver.wait_for("/chat")
    body = json.loads(got.body)
    assert body["event"] == "message:created"
    assert body["message_id"] == human.json()["id"]
    assert body["message"]["text"] == "hello agent"
    Webhook(agent["webhookSecret"]).verify(got.body, got.headers)
    assert await deliveries(owner, own["id"]) == []
