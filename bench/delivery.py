"""Webhook delivery scenarios: throughput of 1 and 2 dispatcher processes against a bare aiohttp
loop POSTing the same bodies to the same receiver; response -> webhook latency; and a receiver
that hangs beside a healthy one."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaProducer

from bench.harness import Account, BenchStack, Result
from bench.realtime import _post_reviews, pct, respond
from signoff_common.clock import utcnow
from signoff_common.events import MessageData, ReviewResponded, event_to_json
from signoff_common.views import MessageView, ReviewView
from signoff_devstack.processes import free_port

EVENTS = 3000
CONCURRENCY = 16  # the dispatcher's default per-host cap: the baseline gets the same
LATENCY_ROUNDS = 40


class Sink:
    """An aiohttp receiver that records when each webhook-id arrived; ``hang`` paths sleep."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.count = 0
        self.hang: set[str] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> Sink:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        if request.match_info["path"] in self.hang:
            await asyncio.sleep(10)
        self.count += 1
        self.arrived.setdefault(request.headers.get("webhook-id", str(self.count)), time.perf_counter())
        return web.Response(text="ok")

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def wait_count(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.count < n and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


async def _baseline(url: str, body: bytes, n: int, concurrency: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                async with session.post(url, data=body, headers={"content-type": "application/json"}) as resp:
                    await resp.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - started)


async def _produce(bootstrap: str, channel: str, n: int) -> list[str]:
    now = utcnow()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    ids = []
    try:
        for i in range(n):
            view = MessageView(id=f"msg_bench{i}", channel_id=channel, text="t", created_at=now,
                               review=ReviewView(type="approval", status="completed",
                                                 response={"selectedOption": "approve"}, responded_at=now))  # fmt: skip
            event = ReviewResponded(channel_id=channel, owner_id="bench", data=MessageData(message=view))
            ids.append(event.id)
            await producer.send("review.responded", event_to_json(event), key=channel.encode())
        await producer.flush()
    finally:
        await producer.stop()
    return ids


async def _dispatch_rate(stack: BenchStack, sink: Sink, channel: str) -> float:
    before = sink.count
    started = time.perf_counter()
    await _produce(f"127.0.0.1:{stack.kafka.port}", channel, EVENTS)
    await sink.wait_count(before + EVENTS, 180)
    delivered = sink.count - before
    return delivered / (time.perf_counter() - started)


async def throughput(stack: BenchStack) -> Result:
    api = stack.service("api", instance="api-bench")
    stack.service("dispatcher", instance="dispatcher-1")
    sink = await Sink().start()
    try:
        base = f"http://127.0.0.1:{api.port}"
        channel = Account.create(base).agent(base, webhookUrl=sink.url("hook"))
        body = json.dumps({"event": "review:responded", "channelId": channel, "message_id": "msg_x", "review_type": "approval",
                           "response": {"selectedOption": "approve"}, "responded_at": "2026-01-01T00:00:00.000Z"}).encode()  # fmt: skip
        await asyncio.sleep(2)
        ceiling = await _baseline(sink.url("ceiling"), body, EVENTS, 64)
        baseline = await _baseline(sink.url("base"), body, EVENTS, CONCURRENCY)
        one = await _dispatch_rate(stack, sink, channel)
        stack.service("dispatcher", instance="dispatcher-2")
        await asyncio.sleep(12)  # consumer-group rebalance onto both processes
        two = await _dispatch_rate(stack, sink, channel)
    finally:
        await sink.stop()
    ratio = one / baseline
    return Result(
        name="Delivery throughput",
        measure={"one_dispatcher_per_s": round(one), "two_dispatchers_per_s": round(two)},
        baseline={"bare_aiohttp_per_s": round(baseline), "sink_ceiling_per_s": round(ceiling)},
        ratio=round(ratio, 2),
        target=">= 0.6x baseline with one process",
        met=ratio >= 0.6,
        notes=[
            f"{EVENTS} review.responded events produced to Kafka per run; baseline loop at concurrency "
            f"{CONCURRENCY} (the per-host cap); sink ceiling = same loop at 64"
        ],
        series={"deliveries/s": [baseline, one, two]},
    )


async def _respond_latencies(
    stack_api: str, account: Account, channel: str, sink: Sink, rounds: int
) -> list[float]:
    out: list[float] = []
    async with aiohttp.ClientSession(headers={"x-api-key": account.api_key}) as agent, \
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {account.token}"}) as human:  # fmt: skip
        ids = await _post_reviews(agent, stack_api, channel, rounds)
        for message_id in ids:
            before = sink.count
            await respond(human, stack_api, message_id)
            answered = time.perf_counter()
            deadline = time.monotonic() + 30
            while sink.count <= before and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
            out.append((time.perf_counter() - answered) * 1000)
    return out


async def latency(stack: BenchStack) -> Result:
    api = stack.service("api", instance="api-bench")
    stack.service("dispatcher", instance="dispatcher-bench")
    sink = await Sink().start()
    try:
        base = f"http://127.0.0.1:{api.port}"
        account = Account.create(base)
        channel = account.agent(base, webhookUrl=sink.url("hook"))
        await asyncio.sleep(2)
        lat = await _respond_latencies(base, account, channel, sink, LATENCY_ROUNDS)
    finally:
        await sink.stop()
    p50, p99 = statistics.median(lat), pct(lat, 0.99)
    return Result(
        name="Response to webhook",
        measure={"p50_ms": round(p50, 1), "p99_ms": round(p99, 1)},
        baseline=None,
        ratio=None,
        target="p50 <= 25 ms, p99 <= 100 ms",
        met=p50 <= 25 and p99 <= 100,
        notes=[
            f"{LATENCY_ROUNDS} sequential responses at light load; respond call returned -> receiver has it"
        ],
        series={"latency ms": lat},
    )


async def isolation(stack: BenchStack) -> Result:
    api = stack.service("api", instance="api-bench")
    stack.service("dispatcher", instance="dispatcher-bench")
    healthy = await Sink().start()
    slow = await Sink().start()
    slow.hang.add("slow")
    try:
        base = f"http://127.0.0.1:{api.port}"
        account = Account.create(base)
        good = account.agent(base, webhookUrl=healthy.url("ok"))
        bad = account.agent(base, webhookUrl=slow.url("slow"))
        await asyncio.sleep(2)
        alone = await _respond_latencies(base, account, good, healthy, 25)
        async with aiohttp.ClientSession(headers={"x-api-key": account.api_key}) as agent, \
                aiohttp.ClientSession(headers={"Authorization": f"Bearer {account.token}"}) as human:  # fmt: skip
            for message_id in await _post_reviews(agent, base, bad, 60):
                await respond(human, base, message_id)
        await asyncio.sleep(1)  # the slow receiver now holds its connections
        beside: list[float] = await _respond_latencies(base, account, good, healthy, 25)
    finally:
        await healthy.stop()
        await slow.stop()
    ratio = statistics.median(beside) / statistics.median(alone)
    return Result(
        name="Slow receiver isolation",
        measure={
            "healthy_p50_ms_beside_slow": round(statistics.median(beside), 1),
            "p99_ms": round(pct(beside, 0.99), 1),
        },
        baseline={
            "healthy_alone_p50_ms": round(statistics.median(alone), 1),
            "p99_ms": round(pct(alone, 0.99), 1),
        },
        ratio=round(ratio, 2),
        target="<= 1.2x healthy alone",
        met=ratio <= 1.2,
        notes=["60 deliveries to a receiver hanging 10 s each, then 25 to a healthy one, one dispatcher"],
        series={"alone ms": alone, "beside slow ms": beside},
    )


__all__: list[Any] = ["isolation", "latency", "throughput"]
