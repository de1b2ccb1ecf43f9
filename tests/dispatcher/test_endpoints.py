"""The webhook management API: delivery history, manual retry, test sends, recovery, secret
rotation, and owner isolation - against the real dispatcher and a real receiver."""

from __future__ import annotations

import asyncio

from standardwebhooks import Webhook

from tests.dispatcher.flows import answer, answered, deliveries, settled
from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack, eventually


async def test_manual_retry_resends_the_original_body_and_id(owner: Owner, receiver: Receiver) -> None:
    receiver.routes["/retry"] = answer(500)
    agent = await owner.create_agent(webhookUrl=receiver.url("/retry"), webhookRetrySchedule=[])
    msg = await answered(owner, agent["id"])
    failed = await settled(owner, msg["id"], "failed")
    assert failed["attemptCount"] == 1

    receiver.routes["/retry"] = answer(200)
    resp = await owner.agent.post(
        f"/api/v1/messages/{msg['id']}/webhook/retry", params={"channel": agent["id"]}
    )
    assert resp.status_code == 202, resp.text
    [requeued] = resp.json()["requeued"]
    assert requeued["state"] == "pending"
    assert requeued["status"] == "sent"

    first, second = await receiver.wait_for("/retry", 2)
    assert second.headers["webhook-id"] == first.headers["webhook-id"] == failed["eventId"]
    assert second.body == first.body
    Webhook(agent["webhookSecret"]).verify(second.body, second.headers)
    delivered = await settled(owner, msg["id"], "delivered")
    assert [a["statusCode"] for a in delivered["attempts"]] == [500, 200]


async def test_retry_without_delivery_is_a_conflict(owner: Owner) -> None:
    agent = await owner.create_agent()
    msg = await owner.post_message(agent["id"])
    resp = await owner.agent.post(f"/api/v1/messages/{msg['id']}/webhook/retry")
    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "no_delivery"


async def test_test_endpoint_returns_the_attempt(owner: Owner, receiver: Receiver) -> None:
    agent = await owner.create_agent(webhookUrl=receiver.url("/probe"))
    resp = await owner.agent.post(f"/api/v1/agents/{agent['id']}/webhook/test")
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["delivered"] is True
    assert result["attempt"]["statusCode"] == 200
    assert result["attempt"]["durationMs"] >= 0
    assert result["delivery"]["eventType"] == "webhook.test"
    [got] = receiver.at("/probe")
    body = Webhook(agent["webhookSecret"]).verify(got.body, got.headers)
    assert body["event"] == "webhook:test"
    assert body["channelId"] == agent["id"]
    assert got.headers["webhook-id"] == result["delivery"]["eventId"]

    receiver.routes["/probe"] = answer(500, "x" * 5000)
    failing = (await owner.agent.post(f"/api/v1/agents/{agent['id']}/webhook/test")).json()
    assert failing["delivered"] is False
    assert failing["attempt"]["statusCode"] == 500
    assert len(failing["attempt"]["body"]) == 1024  # first 1 KB only
    assert failing["delivery"]["attemptCount"] == 1  # a test is never retried


async def test_test_endpoint_reports_ssrf_refusal(owner: Owner) -> None:
    agent = await owner.create_agent(webhookUrl="http://169.254.169.254/latest/meta-data/")
    result = (await owner.agent.post(f"/api/v1/agents/{agent['id']}/webhook/test")).json()
    assert result["delivered"] is False
    assert result["attempt"]["errorKind"] == "ssrf_refused"
    assert "link-local" in result["attempt"]["error"]
    # The refusal names the setting that would lift it.
    assert "SAYSO_DISPATCHER_ALLOWED_NETWORKS=169.254.169.254/32" in result["attempt"]["error"]


async def test_test_endpoint_needs_a_url(owner: Owner) -> None:
    agent = await owner.create_agent()
    resp = await owner.agent.post(f"/api/v1/agents/{agent['id']}/webhook/test")
    assert resp.status_code == 409
    assert resp.json()["error"]["field"] == "webhookUrl"


async def test_recover_requeues_failed_deliveries(owner: Owner, receiver: Receiver) -> None:
    receiver.routes["/down"] = answer(503)
    agent = await owner.create_agent(webhookUrl=receiver.url("/down"), webhookRetrySchedule=[])
    msgs = [await answered(owner, agent["id"]) for _ in range(3)]
    failed = [await settled(owner, m["id"], "failed") for m in msgs]

    receiver.routes["/down"] = answer(204)
    since = min(f["createdAt"] for f in failed)
    resp = await owner.agent.post(f"/api/v1/agents/{agent['id']}/webhook/recover", params={"since": since})
    assert resp.status_code == 202, resp.text
    assert resp.json()["requeued"] == 3
    assert resp.json()["more"] is False

    await receiver.wait_for("/down", 6)
    resent = {r.headers["webhook-id"] for r in receiver.at("/down")[3:]}
    assert resent == {f["eventId"] for f in failed}
    for m in msgs:
        await settled(owner, m["id"], "delivered")

        async def mirrored(mid: str = m["id"]) -> bool:
            got = await owner.agent.get(f"/api/v1/messages/{mid}")
            return bool(got.json()["deliveryStatus"] == "webhook_delivered")

        await eventually(mirrored, what="message status back to delivered")
    again = await owner.agent.post(f"/api/v1/agents/{agent['id']}/webhook/recover")
    assert again.json()["requeued"] == 0


async def test_secret_rotation_sends_both_signatures(owner: Owner, receiver: Receiver) -> None:
    agent = await owner.create_agent(webhookUrl=receiver.url("/rotated"))
    old = agent["webhookSecret"]
    resp = await owner.agent.post(f"/api/v1/agents/{agent['id']}/webhook/secret/rotate")
    assert resp.status_code == 200, resp.text
    new = resp.json()["webhookSecret"]
    assert new.startswith("whsec_")
    assert new != old
    assert resp.json()["previousExpiresAt"] is not None

    await answered(owner, agent["id"])
    [got] = await receiver.wait_for("/rotated")
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert Webhook(new).verify(got.body, got.headers) == Webhook(old).verify(got.body, got.headers)
    # The new secret is never shown again.
    shown = (await owner.agent.get(f"/api/v1/agents/{agent['id']}")).text
    assert new not in shown


async def test_concurrent_secret_rotations_keep_every_shown_secret(owner: Owner, receiver: Receiver) -> None:
    agent = await owner.create_agent(webhookUrl=receiver.url("/raced"))
    rotations = await asyncio.gather(
        *(owner.agent.post(f"/api/v1/agents/{agent['id']}/webhook/secret/rotate") for _ in range(2))
    )
    assert [r.status_code for r in rotations] == [200, 200]
    await answered(owner, agent["id"])
    [got] = await receiver.wait_for("/raced")
    for shown in (r.json()["webhookSecret"] for r in rotations):
        assert Webhook(shown).verify(got.body, got.headers)["event"] == "review:responded"


async def test_other_owners_get_404(stack: RunningStack, owner: Owner, receiver: Receiver) -> None:
    agent = await owner.create_agent(webhookUrl=receiver.url("/mine"))
    msg = await answered(owner, agent["id"])
    await settled(owner, msg["id"], "delivered")
    stranger = await stack.new_owner()
    try:
        for method, path in [
            ("GET", f"/api/v1/messages/{msg['id']}/deliveries"),
            ("POST", f"/api/v1/messages/{msg['id']}/webhook/retry"),
            ("POST", f"/api/v1/agents/{agent['id']}/webhook/test"),
            ("POST", f"/api/v1/agents/{agent['id']}/webhook/recover"),
            ("POST", f"/api/v1/agents/{agent['id']}/webhook/secret/rotate"),
        ]:
            resp = await stranger.agent.request(method, path)
            assert resp.status_code == 404, (path, resp.text)
            assert resp.json()["error"]["code"] == "not_found"
    finally:
        await stranger.aclose()
    assert len(await deliveries(owner, msg["id"])) == 1
    assert len(receiver.at("/mine")) == 1
