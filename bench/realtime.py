"""Realtime scenarios: long-poll wake latency and memory per waiter, and Socket.IO fan-out.

Latencies run from the moment the human's respond call has returned to the moment the agent's
waiting request (or the last socket client) has the answer: the whole path API -> MongoDB ->
outbox relay -> Kafka -> realtime."""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.harness import ADMIN, Account, BenchStack, Result
from signoff_devstack.processes import Proc

WAKE_ROUNDS = 60
WAITERS = 10_000
SOCKETS = 1000
FANOUT_ROUNDS = 15
FANOUT_PROCESSES = 4


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


async def _client_process(
    rt_url: str, api_key: str, channel: str, clients: int
) -> asyncio.subprocess.Process:
    env = {**os.environ, "SIGNOFF_BENCH_API_KEY": api_key}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.fanout_clients", rt_url, channel,
        "--clients", str(clients), "--messages", str(FANOUT_ROUNDS),
        stdout=asyncio.subprocess.PIPE, env=env, cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 120)
    if line.strip() != b"ready":
        raise RuntimeError(f"fan-out client process failed to connect its clients: {line!r}")
    return proc


async def fanout(stack: BenchStack) -> Result:
    """1,000 Socket.IO clients spread over FANOUT_PROCESSES processes, so the figure is the
    server's fan-out rather than one Python process decoding a thousand frames in a row."""
    api = stack.service("api", instance="api-bench")
    realtime = stack.service("realtime", instance="realtime-bench")
    api_url = f"http://127.0.0.1:{api.port}"
    rt_url = f"http://127.0.0.1:{realtime.port}"
    account = Account.create(api_url)
    channel = account.agent(api_url)
    per_process = SOCKETS // FANOUT_PROCESSES
    procs = [
        await _client_process(rt_url, account.api_key, channel, per_process) for _ in range(FANOUT_PROCESSES)
    ]
    # message id -> the last arrival reported by each process (system-wide monotonic clock)
    lasts_by_process: dict[str, list[float]] = {}
    got_all: dict[str, asyncio.Event] = {}

    async def read(proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            message_id, at = line.decode().split()
            reports = lasts_by_process.setdefault(message_id, [])
            reports.append(float(at))
            if len(reports) == FANOUT_PROCESSES:
                got_all.setdefault(message_id, asyncio.Event()).set()

    readers = [asyncio.create_task(read(p)) for p in procs]
    lasts: list[float] = []
    timeout = aiohttp.ClientTimeout(total=60)
    try:
        async with aiohttp.ClientSession(headers={"x-api-key": account.api_key}, timeout=timeout) as agent, \
                aiohttp.ClientSession(headers={"Authorization": f"Bearer {account.token}"}, timeout=timeout) as human:  # fmt: skip
            ids = await _post_reviews(agent, api_url, channel, FANOUT_ROUNDS)
            await asyncio.sleep(1.0)
            for message_id in ids:
                done = got_all.setdefault(message_id, asyncio.Event())
                await respond(human, api_url, message_id)
                answered = time.clock_gettime(time.CLOCK_MONOTONIC)
                await asyncio.wait_for(done.wait(), 30)
                lasts.append((max(lasts_by_process[message_id]) - answered) * 1000)
                await asyncio.sleep(0.2)
    finally:
        for task in readers:
            task.cancel()
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
            await proc.wait()
    p99 = pct(lasts, 0.99)
    return Result(
        name="Socket fan-out",
        measure={
            "clients": per_process * FANOUT_PROCESSES,
            "p50_last_ms": round(statistics.median(lasts), 1),
            "p99_last_ms": round(p99, 1),
        },
        baseline=None,
        ratio=None,
        target="p99 <= 250 ms until the last client has it",
        met=p99 <= 250,
        notes=[
            f"{SOCKETS} python-socketio clients in {FANOUT_PROCESSES} processes on one channel, "
            f"{FANOUT_ROUNDS} responses; respond call returned -> last client has it"
        ],
        series={"respond -> last client ms": lasts},
    )


__all__ = ["ADMIN", "fanout", "longpoll"]
