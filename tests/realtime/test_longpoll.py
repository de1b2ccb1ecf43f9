"""Long-poll ``GET /api/v1/reviews/{id}/wait`` through the edge and on a second replica."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from sayso_devstack.processes import Proc
from tests.support.stack import Owner, RunningStack, eventually

APPROVE = {"selectedOption": "approve"}


async def _review(owner: Owner, **review: Any) -> tuple[str, dict[str, Any]]:
    agent = await owner.create_agent(name="waiter")
    msg = await owner.post_message(
        agent["id"], text="deploy?", review={"type": "approval", "payload": {}, **review}
    )
    return agent["id"], msg


async def _waiters(client: httpx.AsyncClient, base: str) -> float:
    """The waiters gauge of one realtime process (how the test knows a poll is parked)."""
    text = (await client.get(f"{base}/metrics")).text
    for line in text.splitlines():
        if line.startswith("sayso_realtime_waiters "):
            return float(line.split()[1])
    raise AssertionError("waiters gauge missing from /metrics")


async def _respond_while_waiting(
    owner: Owner, wait_client: httpx.AsyncClient, metrics_base: str, channel: str, message_id: str
) -> tuple[httpx.Response, float]:
    """Park a long-poll, answer the review, return the poll's answer and the wake latency (ms from
    the response's 200 to the poll's answer)."""
    async with httpx.AsyncClient(timeout=10) as probe:
        before = await _waiters(probe, metrics_base)
        poll = asyncio.create_task(
            wait_client.get(
                f"/api/v1/reviews/{message_id}/wait", params={"channel": channel, "timeout": 25000}
            )
        )
        await eventually(lambda: _parked(probe, metrics_base, before), what="long-poll parked")
    answered = await owner.respond(message_id, APPROVE)
    assert answered.status_code == 200, answered.text
    responded = time.perf_counter()
    result = await poll
    return result, (time.perf_counter() - responded) * 1000


async def _parked(probe: httpx.AsyncClient, base: str, before: float) -> bool:
    return await _waiters(probe, base) > before


async def test_wait_returns_completed_when_a_human_responds(stack: RunningStack, owner: Owner) -> None:
    channel, msg = await _review(owner)
    realtime = f"http://127.0.0.1:{stack.procs['realtime'].port}"
    result, latency_ms = await _respond_while_waiting(owner, owner.agent, realtime, channel, msg["id"])
    print(f"\nlong-poll wake latency (edge, one replica): {latency_ms:.1f} ms")
    assert result.status_code == 200, result.text
    body = result.json()
    assert body["status"] == "completed"
    assert body["response"] == APPROVE
    assert body["message"]["id"] == msg["id"]
    assert body["message"]["review"]["status"] == "completed"
    assert "timedOut" not in body


async def test_wait_on_a_closed_review_answers_at_once(stack: RunningStack, owner: Owner) -> None:
    _, msg = await _review(owner)
    assert (await owner.respond(msg["id"], APPROVE)).status_code == 200
    started = time.perf_counter()
    result = await owner.agent.get(f"/api/v1/reviews/{msg['id']}/wait", params={"timeout": 20000})
    assert result.status_code == 200, result.text
    assert result.json()["status"] == "completed"
    assert result.json()["response"] == APPROVE
    print(f"\nlong-poll on an answered review returned in {(time.perf_counter() - started) * 1000:.1f} ms")


async def test_wait_returns_expired_when_the_deadline_passes(stack: RunningStack, owner: Owner) -> None:
    channel, msg = await _review(owner, expiresInSeconds=1)
    result = await owner.agent.get(
        f"/api/v1/reviews/{msg['id']}/wait", params={"channel": channel, "timeout": 20000}
    )
    assert result.status_code == 200, result.text
    body = result.json()
    assert body["status"] == "expired"
    assert body["response"] is None
    assert body["message"]["review"]["status"] == "expired"


async def test_wait_times_out_with_pending_as_placet_does(stack: RunningStack, owner: Owner) -> None:
    _, msg = await _review(owner)
    started = time.perf_counter()
    # "1200ms" reads as 1200, like Placet's parseInt.
    result = await owner.agent.get(f"/api/v1/reviews/{msg['id']}/wait", params={"timeout": "1200ms"})
    waited = time.perf_counter() - started
    assert result.status_code == 200, result.text
    body = result.json()
    assert body == {**body, "status": "pending", "timedOut": True, "response": None}
    assert body["message"]["review"]["status"] == "pending"
    assert waited >= 1.1  # it did wait (a lower bound only; never an upper one)
    print(f"\nlong-poll timeout=1200ms answered after {waited * 1000:.0f} ms")


async def test_wait_accepts_a_user_token_too(stack: RunningStack, owner: Owner) -> None:
    _, msg = await _review(owner)
    result = await owner.human.get(f"/api/v1/reviews/{msg['id']}/wait", params={"timeout": 200})
    assert result.status_code == 200, result.text
    assert result.json()["status"] == "pending"


async def test_only_the_agents_key_reads_password_answers_in_full(stack: RunningStack, owner: Owner) -> None:
    """The long-poll hands the agent the whole answer; a person waiting with a session (owner or
    member) reads it as every other screen shows it, the password redacted."""
    agent = await owner.create_agent(name="form")
    fields = [
        {"name": "user", "label": "User", "type": "text"},
        {"name": "pw", "label": "PW", "type": "password"},
    ]
    msg = await owner.post_message(
        agent["id"], text="log in?", review={"type": "form", "payload": {"fields": fields}}
    )
    parked = asyncio.create_task(
        owner.human.get(f"/api/v1/reviews/{msg['id']}/wait", params={"timeout": 20000})
    )
    await asyncio.sleep(0.5)  # parked or not, the answer it gets must be redacted
    answered = await owner.respond(msg["id"], {"user": "ana", "pw": "s3cret"})
    assert answered.status_code == 200, answered.text
    woken = await parked
    at_once = await owner.human.get(f"/api/v1/reviews/{msg['id']}/wait", params={"timeout": 200})
    for result in (woken, at_once):
        assert result.status_code == 200, result.text
        body = result.json()
        assert body["response"] == {"user": "ana", "pw": "***REDACTED***"}
        assert body["message"]["review"]["response"] == {"user": "ana", "pw": "***REDACTED***"}
        assert "s3cret" not in result.text
    agent_reads = await owner.agent.get(f"/api/v1/reviews/{msg['id']}/wait", params={"timeout": 200})
    assert agent_reads.json()["response"] == {"user": "ana", "pw": "s3cret"}
    assert agent_reads.json()["message"]["review"]["response"] == {"user": "ana", "pw": "s3cret"}


async def test_wait_refuses_missing_credentials_and_hides_other_owners(
    stack: RunningStack, owner: Owner
) -> None:
    channel, msg = await _review(owner)
    async with stack.client() as anonymous:
        missing = await anonymous.get(f"/api/v1/reviews/{msg['id']}/wait", params={"timeout": 100})
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    async with stack.client(**{"x-api-key": "sk_not-a-real-key"}) as wrong:
        bad = await wrong.get(f"/api/v1/reviews/{msg['id']}/wait", params={"timeout": 100})
    assert bad.status_code == 401
    other = await stack.new_owner()
    try:
        theirs = await other.agent.get(f"/api/v1/reviews/{msg['id']}/wait", params={"timeout": 100})
        assert theirs.status_code == 404
        assert theirs.json()["error"] == {"code": "not_found", "message": "review not found"}
    finally:
        await other.aclose()
    unknown = await owner.agent.get("/api/v1/reviews/msg_doesnotexist/wait", params={"timeout": 100})
    assert unknown.status_code == 404
    wrong_channel = await owner.agent.get(
        f"/api/v1/reviews/{msg['id']}/wait", params={"timeout": 100, "channel": channel + "x"}
    )
    assert wrong_channel.status_code == 404


async def test_a_waiter_on_another_replica_is_woken(
    stack: RunningStack, owner: Owner, second_realtime: Proc
) -> None:
    """The response goes through the edge (API, relay, Kafka); the poll waits on a replica the edge
    does not even route to. Every replica consumes every event, so it wakes all the same."""
    channel, msg = await _review(owner)
    base = f"http://127.0.0.1:{second_realtime.port}"
    async with httpx.AsyncClient(base_url=base, headers={"x-api-key": owner.api_key}, timeout=30) as direct:
        result, latency_ms = await _respond_while_waiting(owner, direct, base, channel, msg["id"])
    print(f"\nlong-poll wake latency (second replica): {latency_ms:.1f} ms")
    assert result.status_code == 200, result.text
    assert result.json()["status"] == "completed"
    assert result.json()["response"] == APPROVE


async def test_many_waiters_on_two_replicas_all_wake(
    stack: RunningStack, owner: Owner, second_realtime: Proc
) -> None:
    """Twenty reviews, each polled on both replicas at once, answered together: all forty wake."""
    agent = await owner.create_agent(name="fleet")
    reviews = [
        await owner.post_message(agent["id"], text=f"step {i}", review={"type": "approval", "payload": {}})
        for i in range(20)
    ]
    bases = [f"http://127.0.0.1:{stack.procs['realtime'].port}", f"http://127.0.0.1:{second_realtime.port}"]
    clients = [httpx.AsyncClient(base_url=b, headers={"x-api-key": owner.api_key}, timeout=30) for b in bases]
    try:
        polls = [
            asyncio.create_task(c.get(f"/api/v1/reviews/{r['id']}/wait", params={"timeout": 25000}))
            for r in reviews
            for c in clients
        ]
        async with httpx.AsyncClient(timeout=10) as probe:

            async def all_parked() -> bool:
                return all([await _waiters(probe, b) >= 20 for b in bases])

            await eventually(all_parked, what="forty polls parked")
        answers = await asyncio.gather(*(owner.respond(r["id"], APPROVE) for r in reviews))
        assert {a.status_code for a in answers} == {200}
        results = await asyncio.gather(*polls)
    finally:
        for c in clients:
            await c.aclose()
    assert [r.json()["status"] for r in results] == ["completed"] * 40


async def test_metrics_expose_waiters_sockets_and_fanout_latency(stack: RunningStack, owner: Owner) -> None:
    _, msg = await _review(owner)  # at least one event has been fanned out
    realtime = f"http://127.0.0.1:{stack.procs['realtime'].port}"
    async with httpx.AsyncClient(timeout=10) as client:

        async def fanned_out() -> str | None:
            text = (await client.get(f"{realtime}/metrics")).text
            return text if 'sayso_realtime_events_consumed_total{type="message.created"}' in text else None

        text = await eventually(fanned_out, what="message.created consumed")
        ready = (await client.get(f"{realtime}/readyz")).json()
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line and line[0] != "#"
    }
    assert "sayso_realtime_waiters" in samples
    assert "sayso_realtime_sockets" in samples
    assert "sayso_realtime_sse_streams" in samples
    assert samples["sayso_realtime_fanout_latency_seconds_count"] >= 1
    assert ready["checks"]["kafka"].startswith("ok")
    assert msg["id"]


@pytest.mark.parametrize("route", ["direct", "edge"])
async def test_a_poll_whose_client_hangs_up_frees_its_waiter_at_once(
    stack: RunningStack, owner: Owner, route: str
) -> None:
    """Issue #30: a parked poll whose client disconnects is ended then, not at its 30 s timeout
    (the waiter and the owner's poll quota place come back). Also through the edge: Caddy closes
    its upstream request when its client goes. The check waits 10 s, a third of the timeout."""
    channel, msg = await _review(owner)
    metrics = f"http://127.0.0.1:{stack.procs['realtime'].port}"
    base = metrics if route == "direct" else stack.url
    async with httpx.AsyncClient(timeout=10) as probe:
        before = await _waiters(probe, metrics)
        polls = []
        for _ in range(3):
            client = httpx.AsyncClient(base_url=base, headers={"x-api-key": owner.api_key}, timeout=60)
            poll = asyncio.create_task(
                client.get(f"/api/v1/reviews/{msg['id']}/wait", params={"channel": channel, "timeout": 30000})
            )
            polls.append((client, poll))

        async def parked() -> bool:
            return await _waiters(probe, metrics) >= before + 3

        await eventually(parked, what="three polls parked")
        for client, poll in polls:  # the agents go away: their connections close
            poll.cancel()
            await asyncio.gather(poll, return_exceptions=True)
            await client.aclose()

        async def freed() -> bool:
            return await _waiters(probe, metrics) <= before

        await eventually(freed, timeout=10, what="the waiters of the closed polls are gone")
    # The review is still answerable and a new poll still wakes (nothing was left half-done).
    async with httpx.AsyncClient(base_url=base, headers={"x-api-key": owner.api_key}, timeout=30) as again:
        result, _ = await _respond_while_waiting(owner, again, metrics, channel, msg["id"])
    assert result.json()["status"] == "completed"
