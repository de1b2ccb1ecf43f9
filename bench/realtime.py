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
from pymongo import AsyncMongoClient

from bench.expiry import insert_due_reviews
from bench.harness import ADMIN, Account, BenchStack, Result
from sayso_devstack.processes import Proc, mongo_url

WAKE_ROUNDS = 60
LOADED_WAKE_ROUNDS = 30
WAITERS = 10_000
WAITERS_MAX = 50_000
PER_CLIENT = 5_000
FD_RESERVE = 300
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
            if line.startswith("sayso_realtime_waiters "):
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


async def _wake_rounds(
    agent: aiohttp.ClientSession,
    human: aiohttp.ClientSession,
    api_url: str,
    rt_url: str,
    channel: str,
    n: int,
) -> list[float]:
    latencies: list[float] = []
    for message_id in await _post_reviews(agent, api_url, channel, n):
        before = await _waiters(agent, rt_url)
        wait = asyncio.create_task(agent.get(f"{rt_url}/api/v1/reviews/{message_id}/wait?channel={channel}"))
        while await _waiters(agent, rt_url) <= before:
            await asyncio.sleep(0.005)
        await respond(human, api_url, message_id)
        answered = time.perf_counter()
        async with await wait as result:
            body = await result.json()
        latencies.append((time.perf_counter() - answered) * 1000)
        assert body["status"] == "completed", body
    return latencies


def nofile_limit(proc: Proc) -> int:
    """The process's soft limit on open descriptors: one per parked poll."""
    for line in Path(f"/proc/{proc.popen.pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise RuntimeError("no open-files limit")


class ParkedPolls:
    """Client processes (``bench.parked_polls``) holding parked polls, PER_CLIENT each, each
    process from its own loopback source address so no (source, destination) pair runs out of
    ephemeral ports."""

    def __init__(self, rt_port: int, api_key: str, channel: str) -> None:
        self._port = rt_port
        self._env = {**os.environ, "SAYSO_BENCH_API_KEY": api_key}
        self._channel = channel
        self.procs: list[asyncio.subprocess.Process] = []

    async def park(self, ids: list[str]) -> None:
        for start in range(0, len(ids), PER_CLIENT):
            source = f"127.0.0.{len(self.procs) + 1}"
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.parked_polls", str(self._port), self._channel, source,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=self._env,
                cwd=Path(__file__).parent.parent,
            )  # fmt: skip
            self.procs.append(proc)
            assert proc.stdin is not None
            assert proc.stdout is not None
            proc.stdin.write(",".join(ids[start : start + PER_CLIENT]).encode() + b"\n")
            await proc.stdin.drain()
            line = await asyncio.wait_for(proc.stdout.readline(), 300)
            if not line.startswith(b"ready"):
                raise RuntimeError(f"parked-poll client failed: {line!r}")

    async def close(self) -> None:
        for proc in self.procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _hold(http: aiohttp.ClientSession, rt_url: str, n: float, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while (held := await _waiters(http, rt_url)) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    return held


async def longpoll(stack: BenchStack) -> Result:
    api = stack.service("api", instance="api-bench")
    realtime = stack.service("realtime", instance="realtime-bench")
    api_url = f"http://127.0.0.1:{api.port}"
    rt_url = f"http://127.0.0.1:{realtime.port}"
    account = Account.create(api_url)
    channel = account.agent(api_url)
    # Every parked poll is a socket in the realtime process: its descriptor limit (which this
    # container does not let anyone raise) caps the count, less what MongoDB, Kafka and the
    # listener use.
    most = min(WAITERS_MAX, nofile_limit(realtime) - FD_RESERVE)
    timeout = aiohttp.ClientTimeout(total=120)
    parked = ParkedPolls(realtime.port, account.api_key, channel)
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url(stack.mongo.port), tz_aware=True)
    async with aiohttp.ClientSession(headers={"x-api-key": account.api_key}, timeout=timeout) as agent, \
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {account.token}"}, timeout=timeout) as human:  # fmt: skip
        try:
            idle_wake = await _wake_rounds(agent, human, api_url, rt_url, channel, WAKE_ROUNDS)
            await insert_due_reviews(client.sayso, channel, most, 3600)
            ids = [str(d["_id"]) async for d in client.sayso.messages.find(
                {"channel_id": channel, "review.status": "pending"}, {"_id": 1})]  # fmt: skip
            idle_kb = rss_kb(realtime)
            await parked.park(ids[:WAITERS])
            held_10k = await _hold(agent, rt_url, WAITERS, 120)
            kb_10k = rss_kb(realtime)
            await parked.park(ids[WAITERS:most])
            held_most = await _hold(agent, rt_url, most, 300)
            kb_most = rss_kb(realtime)
            loaded_wake = await _wake_rounds(agent, human, api_url, rt_url, channel, LOADED_WAKE_ROUNDS)
        finally:
            await parked.close()
            await client.close()
    per_waiter = (kb_10k - idle_kb) / max(held_10k, 1)
    per_waiter_most = (kb_most - idle_kb) / max(held_most, 1)
    p50, p99 = statistics.median(idle_wake), pct(idle_wake, 0.99)
    p50_most = statistics.median(loaded_wake)
    return Result(
        name="Long-poll wake",
        measure={
            "p50_ms": round(p50, 1),
            "p99_ms": round(p99, 1),
            "waiters": int(held_10k),
            "kb_per_waiter": round(per_waiter, 1),
            "most_parked": int(held_most),
            "kb_per_waiter_at_most": round(per_waiter_most, 1),
            "p50_ms_at_most": round(p50_most, 1),
            "p99_ms_at_most": round(pct(loaded_wake, 0.99), 1),
        },
        baseline=None,
        ratio=None,
        target=f"p50 <= 10 ms; <= 20 KB per waiter at {WAITERS}; {WAITERS_MAX} parked with p50 <= 10 ms",
        met=p50 <= 10 and per_waiter <= 20 and held_most >= WAITERS_MAX and p50_most <= 10,
        notes=[
            f"{WAKE_ROUNDS} sequential respond -> wake rounds with nothing parked, {LOADED_WAKE_ROUNDS} with "
            f"the most parked; memory = realtime RSS growth over idle with {WAITERS}, then the most parked "
            f"polls (clients in separate processes, {PER_CLIENT} each). The most is min({WAITERS_MAX}, the "
            f"realtime process's open-files limit - {FD_RESERVE}); its limit here: {nofile_limit(realtime)}"
        ],
        series={"wake latency ms": idle_wake, f"wake ms with {int(held_most)} parked": loaded_wake},
    )


async def _client_process(
    rt_url: str, api_key: str, channel: str, clients: int
) -> asyncio.subprocess.Process:
    env = {**os.environ, "SAYSO_BENCH_API_KEY": api_key}
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
