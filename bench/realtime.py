"""Realtime scenarios: long-poll wake latency and memory per waiter, and Socket.IO fan-out.

Latencies run from the moment the human's respond call has returned to the moment the agent's
waiting request (or the last socket client) has the answer: the whole path API -> MongoDB ->
outbox relay -> Kafka -> realtime."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from bench.harness import ADMIN, Account, BenchStack, Result
from signoff_devstack.processes import Proc

WAKE_ROUNDS = 60
WAITERS = 10_000
SOCKETS = 1000
FANOUT_ROUNDS = 15


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rss_kb(proc: Proc) -> int:
    for line in Path(f"/proc/{proc.popen.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def _waiters(http: aiohttp.ClientSession, realtime_url: str) -> float:
    async with http.get(f"{realtime_url}/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith("signoff_realtime_waiters "):
                return float(line.split()[1])
    return 0.0


async def _post_reviews(http: aiohttp.ClientSession, api: str, channel: str, n: int) -> list[str]:
    sem = asyncio.Semaphore(32)

    async def one(i: int) -> str:
        async with sem, http.post(f"{api}/api/v1/messages", json={
            "channelId": channel, "text": f"wait {i}", "review": {"type": "approval", "payload": {}},
        }) as resp:  # fmt: skip
            body: dict[str, Any] = await resp.json()
            return str(body["id"])

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def respond(human: aiohttp.ClientSession, api: str, message_id: str) -> None:
    """Answer an approval review as the human; the benchmarks time what happens next."""
    async with human.post(f"{api}/api/v1/reviews/{message_id}/respond",
                          json={"response": {"selectedOption": "approve"}}) as resp:  # fmt: skip
        assert resp.status == 200, await resp.text()


async def longpoll(stack: BenchStack) -> Result:
    api = stack.service("api", instance="api-bench")
    realtime = stack.service("realtime", instance="realtime-bench")
    api_url = f"http://127.0.0.1:{api.port}"
    rt_url = f"http://127.0.0.1:{realtime.port}"
    account = Account.create(api_url)
    channel = account.agent(api_url)
    agent_headers = {"x-api-key": account.api_key}
    human_headers = {"Authorization": f"Bearer {account.token}"}
    latencies: list[float] = []
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(headers=agent_headers, timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as agent, \
            aiohttp.ClientSession(headers=human_headers, timeout=timeout) as human:  # fmt: skip
        ids = await _post_reviews(agent, api_url, channel, WAKE_ROUNDS)
        for message_id in ids:
            before = await _waiters(agent, rt_url)
            wait = asyncio.create_task(
                agent.get(f"{rt_url}/api/v1/reviews/{message_id}/wait?channel={channel}")
            )
            while await _waiters(agent, rt_url) <= before:
                await asyncio.sleep(0.005)
            await respond(human, api_url, message_id)
            answered = time.perf_counter()
            result = await wait
            body = await result.json()
            latencies.append((time.perf_counter() - answered) * 1000)
            assert body["status"] == "completed", body
        # Memory: park WAITERS long-polls at once on pending reviews.
        parked_ids = await _post_reviews(agent, api_url, channel, WAITERS)
        idle_kb = rss_kb(realtime)
        polls = [
            asyncio.create_task(
                agent.get(f"{rt_url}/api/v1/reviews/{m}/wait?channel={channel}&timeout=30000")
            )
            for m in parked_ids
        ]
        deadline = time.monotonic() + 60
        while await _waiters(agent, rt_url) < WAITERS and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        held = await _waiters(agent, rt_url)
        held_kb = rss_kb(realtime)
        for task in polls:
            task.cancel()
        await asyncio.gather(*polls, return_exceptions=True)
    per_waiter = (held_kb - idle_kb) / max(held, 1)
    p50, p99 = statistics.median(latencies), pct(latencies, 0.99)
    return Result(
        name="Long-poll wake",
        measure={
            "p50_ms": round(p50, 1),
            "p99_ms": round(p99, 1),
            "waiters": int(held),
            "kb_per_waiter": round(per_waiter, 1),
        },
        baseline=None,
        ratio=None,
        target="p50 <= 10 ms; <= 20 KB per waiter",
        met=p50 <= 10 and per_waiter <= 20,
        notes=[
            f"{WAKE_ROUNDS} sequential respond -> wake rounds; memory = realtime RSS growth with {WAITERS} parked polls"
        ],
        series={"wake latency ms": latencies},
    )


async def fanout(stack: BenchStack) -> Result:
    api = stack.service("api", instance="api-bench")
    realtime = stack.service("realtime", instance="realtime-bench")
    api_url = f"http://127.0.0.1:{api.port}"
    rt_url = f"http://127.0.0.1:{realtime.port}"
    account = Account.create(api_url)
    channel = account.agent(api_url)
    received: dict[str, list[float]] = {}
    clients: list[socketio.AsyncClient] = []

    async def connect() -> None:
        sio = socketio.AsyncClient(reconnection=False)

        @sio.on("review:responded", namespace="/ws")  # type: ignore[untyped-decorator]
        async def on_responded(message: dict[str, Any]) -> None:
            received.setdefault(message["id"], []).append(time.perf_counter())

        await sio.connect(rt_url, namespaces=["/ws"], transports=["websocket"],
                          auth={"apiKey": account.api_key, "channels": [channel]}, wait_timeout=30)  # fmt: skip
        clients.append(sio)

    sem = asyncio.Semaphore(50)

    async def guarded() -> None:
        async with sem:
            await connect()

    await asyncio.gather(*(guarded() for _ in range(SOCKETS)))
    lasts: list[float] = []
    timeout = aiohttp.ClientTimeout(total=60)
    try:
        async with aiohttp.ClientSession(headers={"x-api-key": account.api_key}, timeout=timeout) as agent, \
                aiohttp.ClientSession(headers={"Authorization": f"Bearer {account.token}"}, timeout=timeout) as human:  # fmt: skip
            ids = await _post_reviews(agent, api_url, channel, FANOUT_ROUNDS)
            await asyncio.sleep(1.0)
            for message_id in ids:
                await respond(human, api_url, message_id)
                answered = time.perf_counter()
                deadline = time.monotonic() + 30
                while len(received.get(message_id, [])) < SOCKETS and time.monotonic() < deadline:
                    await asyncio.sleep(0.005)
                got = received.get(message_id, [])
                assert len(got) == SOCKETS, f"{len(got)} of {SOCKETS} clients got {message_id}"
                lasts.append((max(got) - answered) * 1000)
                await asyncio.sleep(0.2)
    finally:
        await asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True)
    p99 = pct(lasts, 0.99)
    return Result(
        name="Socket fan-out",
        measure={
            "clients": SOCKETS,
            "p50_last_ms": round(statistics.median(lasts), 1),
            "p99_last_ms": round(p99, 1),
        },
        baseline=None,
        ratio=None,
        target="p99 <= 250 ms until the last client has it",
        met=p99 <= 250,
        notes=[f"{SOCKETS} python-socketio clients (one process) on one channel, {FANOUT_ROUNDS} responses"],
        series={"respond -> last client ms": lasts},
    )


__all__ = ["ADMIN", "fanout", "longpoll"]
