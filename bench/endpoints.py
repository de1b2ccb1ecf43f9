"""Endpoint scenarios (issue #31): the dispatcher CPU of fanning one event out to five HTTP
endpoints against one; an endpoint's rate limit as its receiver sees it with three dispatcher
replicas; the pull feed draining a backlog against a bare ``find`` of the same pages; and a
slow, a failing and a rate-limited endpoint beside a healthy endpoint of the same channel and
another tenant's.

Each takes its sizes as keyword arguments (``make bench`` uses the defaults; the wiring tests in
tests/test_bench_endpoints.py pass tiny ones)."""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import aiohttp
import httpx
from prometheus_client.parser import text_string_to_metric_families
from pymongo import AsyncMongoClient

from bench.delivery import (
    Sink,
    _other_tenant,
    _outbox_drained,
    _owner_of,
    _produce,
    _respond_latencies,
    _responded,
    _seed_messages,
)
from bench.harness import Account, BenchStack, Result
from bench.realtime import _post_reviews, pct, respond
from bench.resources import Usage
from bench.verdict import unreliable_baseline
from sayso_common.clock import utcnow
from sayso_common.mongo import DELIVERIES, EVENTS
from sayso_common.outbox import events_document
from sayso_devstack.processes import Proc, mongo_url, spawn_service, wait_healthy

FANOUT = 5  # endpoints of the fanned-out channel
RATE_LIMIT = 20  # deliveries per second
RATE_TOLERANCE = 0.10
FEED_PAGE = 1000  # the feed's largest page: what a client draining a backlog asks for
FEED_TARGET = 5000  # events per second


def _create_endpoint(api_base: str, account: Account, channel: str | None, **body: Any) -> str:
    """An endpoint of ``channel`` (None: account-wide) through the API, as an owner makes one."""
    path = f"/api/v1/agents/{channel}/endpoints" if channel else "/api/v1/endpoints"
    with httpx.Client(base_url=api_base, timeout=30, headers={"x-api-key": account.api_key}) as client:
        endpoint_id: str = client.post(path, json=body).raise_for_status().json()["id"]
        return endpoint_id


def _api_and_dispatchers(
    stack: BenchStack, count: int, idle_recheck: float | None = None
) -> tuple[Proc, list[str]]:
    """Start the API and ``count`` dispatcher replicas (one consumer group) side by side, their
    imports overlapping, and wait until each is healthy; the API and the replicas' instance names.
    ``idle_recheck``: the replicas' fetch gate recheck (seconds), None for the setting's default."""
    names = [f"dispatcher-{i + 1}" for i in range(count)]
    # The scenarios produce straight to Kafka, not through an outbox relay, so nothing wakes the
    # dispatchers' fetch gate: paused consumers find each batch at the gate's next recheck.
    env = stack.env(
        **({} if idle_recheck is None else {"SAYSO_KAFKA_IDLE_RECHECK_SECONDS": str(idle_recheck)})
    )
    procs = [
        spawn_service("api", stack.logs, stack.env(), name="api-bench"),
        *(spawn_service("dispatcher", stack.logs, env, name=n) for n in names),
    ]
    stack.procs.extend(procs)  # stopped with the stack even if one never comes up
    for proc in procs:
        wait_healthy(proc)
    return procs[0], names


async def _assignment(http: httpx.AsyncClient, port: int) -> tuple[float, float]:
    """(partitions held now, assignments received so far) of one dispatcher, from its /metrics."""
    text = (await http.get(f"http://127.0.0.1:{port}/metrics")).raise_for_status().text
    seen = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("group") == "dispatcher"
    }
    return (
        seen.get("sayso_consumer_partitions_assigned", 0.0),
        seen.get("sayso_consumer_assignments_total", 0.0),
    )


async def _group_settled(stack: BenchStack, names: list[str], timeout: float) -> None:
    """Wait until every replica named holds partitions and none was given a new assignment over
    the last second (the group settled on its split), at most ``timeout`` seconds."""
    ports = [p.port for p in stack.procs if p.name in names]
    deadline = time.monotonic() + timeout
    last: list[tuple[float, float]] | None = None
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            now = [await _assignment(http, port) for port in ports]
            if (now == last and all(held > 0 for held, _ in now)) or time.monotonic() + 1.0 > deadline:
                return
            last = now
            await asyncio.sleep(1.0)


# --- fan-out ---------------------------------------------------------------------------------


async def _fanout_round(
    stack: BenchStack, sink: Sink, channel: str, owner: str, endpoints: int, events: int, tag: str
) -> Usage:
    batch = _responded(channel, owner, events, tag)
    await _seed_messages(stack, batch)
    before = sink.count
    window = stack.meter.snapshot()
    await _produce(f"127.0.0.1:{stack.kafka.port}", batch)
    await sink.wait_count(before + events * endpoints, 120 + events * endpoints / 20)
    if sink.count < before + events * endpoints:
        raise RuntimeError(f"{sink.count - before} of {events * endpoints} deliveries arrived ({tag})")
    # Until the last delivery.status event left the dispatcher's outbox: its work too.
    await _outbox_drained(stack, 30)
    return stack.meter.since(window)


async def fanout(
    stack: BenchStack,
    *,
    events: int = 600,
    rounds: int = 2,
    warmup: int = 30,
    idle_recheck: float | None = None,
) -> Result:
    """One channel with one HTTP endpoint, one with ``FANOUT``; the same number of events to each,
    in interleaved rounds; the dispatcher process's CPU (``/proc``) per event and per delivery.
    ``idle_recheck``: see :func:`_api_and_dispatchers` (each round waits up to one recheck for
    the dispatcher to fetch its batch)."""
    api, (dispatcher,) = _api_and_dispatchers(stack, 1, idle_recheck)
    sink = await Sink().start()
    try:
        base = f"http://127.0.0.1:{api.port}"
        account = Account.create(base)
        one, five = account.agent(base), account.agent(base)
        _create_endpoint(base, account, one, url=sink.url("one-0"))
        for k in range(FANOUT):
            _create_endpoint(base, account, five, url=sink.url(f"five-{k}"))
        owner = await _owner_of(stack, one)
        # Caches, pools and lanes warm, as in a dispatcher that has been running.
        await _fanout_round(stack, sink, one, owner, 1, warmup, "w1")
        await _fanout_round(stack, sink, five, owner, FANOUT, warmup, "w5")
        single, fanned = Usage(), Usage()
        singles: list[float] = []
        fives: list[float] = []
        for r in range(rounds):
            s = await _fanout_round(stack, sink, one, owner, 1, events, f"s{r}")
            f = await _fanout_round(stack, sink, five, owner, FANOUT, events, f"f{r}")
            singles.append(s.cpu_s.get(dispatcher, 0.0))
            fives.append(f.cpu_s.get(dispatcher, 0.0))
            single, fanned = single + s, fanned + f
    finally:
        await sink.stop()
    total = events * rounds
    cpu_one = single.cpu_s.get(dispatcher, 0.0) / total  # per event = per delivery
    cpu_five = fanned.cpu_s.get(dispatcher, 0.0) / total  # per event
    ratio = cpu_five / cpu_one if cpu_one else math.inf
    # Lower is better here: the check of a baseline that moved between rounds still applies.
    spread = unreliable_baseline(None, [1 / c for c in singles if c > 0])
    return Result(
        name="Endpoint fan-out CPU",
        measure={
            "dispatcher_cpu_us_per_event_5_endpoints": round(cpu_five * 1e6),
            "dispatcher_cpu_us_per_delivery_5_endpoints": round(cpu_five / FANOUT * 1e6),
            "mongod_write_ops_per_delivery_5": round(fanned.write_ops / (total * FANOUT), 2),
        },
        baseline={
            "dispatcher_cpu_us_per_event_1_endpoint": round(cpu_one * 1e6),
            "mongod_write_ops_per_delivery_1": round(single.write_ops / total, 2),
        },
        ratio=round(ratio, 2),
        target=f"<= {FANOUT}x the dispatcher CPU of one endpoint per event",
        met=ratio <= FANOUT,
        notes=[
            f"{events} review.responded events produced to Kafka per round, {rounds} interleaved rounds, "
            f"to a channel with one HTTP endpoint and to one with {FANOUT} (one receiver, one dispatcher); "
            "CPU = the dispatcher process's user+system time from /proc over each round, until every "
            "delivery arrived and its delivery.status event left the outbox; after a warm-up round each"
        ],
        resources=(single + fanned).as_dict(),
        unreliable=spread,
        series={
            "1 endpoint: dispatcher CPU s": singles,
            f"{FANOUT} endpoints: dispatcher CPU s": fives,
        },
    )


# --- rate limit across replicas ----------------------------------------------------------------


def per_second(walls: list[float]) -> dict[int, int]:
    """Arrivals per whole epoch second."""
    return dict(sorted(Counter(int(w) for w in walls).items()))


def held_rate(walls: list[float], window: float) -> tuple[float, float, float]:
    """The delivered rate over ``window`` seconds of a backlog's arrivals: from the second whole
    second after the first arrival (the backlog is being stored then), so the window holds only
    seconds the limit governed. Returns (rate, window start, window end); the rate is 0 when the
    arrivals ended before the window did."""
    if not walls:
        return 0.0, 0.0, 0.0
    start = math.floor(min(walls)) + 2.0
    end = start + window
    if max(walls) < end:
        return 0.0, start, end
    return sum(1 for w in walls if start <= w < end) / window, start, end


async def rate_limit(
    stack: BenchStack,
    *,
    limit: int = RATE_LIMIT,
    window: float = 15.0,
    replicas: int = 3,
    channels: int = 12,
    settle: float = 12.0,
    idle_recheck: float | None = None,
) -> Result:
    """An account-wide endpoint with ``rateLimit`` ``limit`` on ``channels`` channels (their events
    spread over the topic's partitions, so every replica takes part), a backlog of events far
    beyond the limit, ``replicas`` dispatchers; the rate its receiver sees over ``window``.
    ``idle_recheck``: see :func:`_api_and_dispatchers`."""
    api, names = _api_and_dispatchers(stack, replicas, idle_recheck)
    sink = await Sink().start()
    backlog = int(limit * (window + 6))
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url(stack.mongo.port))
    try:
        base = f"http://127.0.0.1:{api.port}"
        account = Account.create(base)
        ids = [account.agent(base) for _ in range(channels)]
        endpoint = _create_endpoint(base, account, None, url=sink.url("limited"), rateLimit=limit)
        owner = await _owner_of(stack, ids[0])
        # The replicas' consumer group settles on its partitions (at most ``settle`` seconds).
        await _group_settled(stack, names, settle)
        batch = [
            e for i, c in enumerate(ids) for e in _responded(c, owner, backlog // channels + 1, f"r{i}x")
        ]
        await _seed_messages(stack, batch)
        window_usage = stack.meter.snapshot()
        await _produce(f"127.0.0.1:{stack.kafka.port}", batch)
        await sink.wait_count(len(batch), len(batch) / limit + 60)
        usage = stack.meter.since(window_usage)
        senders: Counter[str] = Counter()
        async for d in mongo.sayso[DELIVERIES].find({"endpoint_id": endpoint}, {"attempts.by": 1}):
            senders.update(a["by"] for a in d.get("attempts", []))
    finally:
        await sink.stop()
        await mongo.close()
    rate, start, end = held_rate(sink.walls, window)
    seconds = per_second(sink.walls)
    inside = [n for s, n in seconds.items() if start <= s < end]
    off = abs(rate - limit) / limit
    return Result(
        name="Endpoint rate limit across replicas",
        measure={
            "delivered_per_s": round(rate, 2),
            "busiest_second": max(inside, default=0),
            "quietest_second": min(inside, default=0),
            "delivered": sink.count,
            "replicas_that_sent": len(senders),
        },
        baseline={"rate_limit_per_s": limit},
        ratio=round(rate / limit, 3),
        target=f"within ±{RATE_TOLERANCE:.0%} of the limit with {replicas} dispatcher replicas",
        met=off <= RATE_TOLERANCE and len(senders) == replicas,
        notes=[
            f"a backlog of {len(batch)} review.responded events on {channels} channels (spread over the "
            f"topic's partitions) for one account-wide endpoint with rateLimit {limit}; {replicas} "
            f"dispatchers ({', '.join(names)}; requests per sender: "
            f"{', '.join(f'{n} {c}' for n, c in sorted(senders.items()))}); the rate is what "
            f"the receiver counted over {window:.0f} s from the second whole second after the first "
            "arrival"
        ],
        resources=usage.as_dict(),
        series={"arrivals per second": [float(n) for n in seconds.values()]},
    )


# --- pull feed ---------------------------------------------------------------------------------


async def _seed_feed(stack: BenchStack, channel: str, owner: str, count: int) -> None:
    """``count`` events stored as the outbox relay stores them, long enough ago to be served."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url(stack.mongo.port))
    try:
        stamp = utcnow() - timedelta(minutes=5)
        docs: list[Any] = []
        for i, event in enumerate(_responded(channel, owner, count, "feed")):
            doc = events_document(event, timedelta(days=30))
            # Some share a millisecond, as a busy relay's do: the cursor's tie-break on _id counts.
            doc["stored_at"] = stamp + timedelta(milliseconds=i // 3)
            docs.append(doc)
        for chunk in range(0, len(docs), 5000):
            await client.sayso[EVENTS].insert_many(docs[chunk : chunk + 5000], ordered=False)
    finally:
        await client.close()


async def _drain_feed(api_base: str, account: Account, channel: str, page: int) -> tuple[int, float]:
    """Read the channel's feed to its end as a client does; (events, seconds)."""
    seen = 0
    after: str | None = None
    async with aiohttp.ClientSession(headers={"x-api-key": account.api_key}) as http:
        started = time.perf_counter()
        while True:
            params = {"channel": channel, "limit": str(page), **({"after": after} if after else {})}
            async with http.get(f"{api_base}/api/v1/feed", params=params) as resp:
                resp.raise_for_status()
                body = await resp.json()
            if not body["data"]:
                return seen, time.perf_counter() - started
            seen += len(body["data"])
            after = body["nextCursor"]


async def _drain_find(stack: BenchStack, channel: str, page: int) -> tuple[int, float]:
    """The same pages by a bare ``find`` (the feed's query, sort and index, no API, no models)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url(stack.mongo.port))
    try:
        coll = client.sayso[EVENTS]
        seen = 0
        last: tuple[Any, str] | None = None
        started = time.perf_counter()
        while True:
            query: dict[str, Any] = {
                "channel_id": channel,
                "stored_at": {"$lte": utcnow() - timedelta(seconds=2)},
            }
            if last is not None:
                query["$or"] = [
                    {"stored_at": {"$gt": last[0]}},
                    {"stored_at": last[0], "_id": {"$gt": last[1]}},
                ]
            docs = await coll.find(query).sort([("stored_at", 1), ("_id", 1)]).limit(page).to_list()
            if not docs:
                return seen, time.perf_counter() - started
            seen += len(docs)
            last = (docs[-1]["stored_at"], docs[-1]["_id"])
    finally:
        await client.close()


async def feed(stack: BenchStack, *, events: int = 20_000, rounds: int = 3, page: int = FEED_PAGE) -> Result:
    """A backlog of ``events`` stored events of one channel, read to the end through
    ``GET /api/v1/feed`` (pages of ``page``) by one client, and by a bare ``find`` of the same
    pages, in interleaved rounds."""
    api = stack.service("api", instance="api-bench")
    base = f"http://127.0.0.1:{api.port}"
    account = Account.create(base)
    channel = account.agent(base)
    owner = await _owner_of(stack, channel)
    await _seed_feed(stack, channel, owner, events)
    feeds: list[float] = []
    finds: list[float] = []
    window = stack.meter.snapshot()
    for _ in range(rounds):
        n, took = await _drain_feed(base, account, channel, page)
        if n != events:
            raise RuntimeError(f"the feed served {n} of {events} stored events")
        feeds.append(n / took)
        n, took = await _drain_find(stack, channel, page)
        finds.append(n / took)
    usage = stack.meter.since(window)
    best, base_best = max(feeds), max(finds)
    ratio = best / base_best
    return Result(
        name="Pull feed backlog",
        measure={"feed_events_per_s": round(best), "feed_median_per_s": round(statistics.median(feeds))},
        baseline={
            "bare_find_events_per_s": round(base_best),
            "median_per_s": round(statistics.median(finds)),
        },
        ratio=round(ratio, 2),
        target=f">= {FEED_TARGET} events/s to one client",
        met=best >= FEED_TARGET,
        notes=[
            f"{events} stored review.responded events of one channel read to the end by one client "
            f"through GET /api/v1/feed?limit={page} (one API process, sequential pages), best of {rounds} "
            f"rounds; baseline: a bare find with the feed's query, sort and index, {page} a page, "
            "interleaved"
        ],
        resources=usage.as_dict(),
        unreliable=unreliable_baseline(ratio, finds),
        series={"feed events/s": feeds, "bare find events/s": finds},
    )


# --- isolation ---------------------------------------------------------------------------------


async def isolation(
    stack: BenchStack, *, rounds: int = 25, backlog: int = 60, hang_seconds: float = 10.0
) -> Result:
    """A healthy endpoint of a channel and another tenant's healthy endpoint, timed alone; then the
    same channel gets a slow (hangs), a failing (500, retried) and a rate-limited (1/s) endpoint and
    a backlog for them, and both healthy endpoints are timed again beside it; then alone once more,
    those three deleted and the slow receiver's requests over (the baseline is both alone rounds,
    and a baseline that moved between them says the machine's load did)."""
    api, _ = _api_and_dispatchers(stack, 1)
    own, other = await Sink().start(), await Sink().start()
    slow, failing, limited = Sink(hang_seconds), Sink(), Sink()
    for sink in (slow, failing, limited):
        await sink.start()
    slow.hang.add("slow")
    failing.fail.add("fail")
    try:
        base = f"http://127.0.0.1:{api.port}"
        noisy = Account.create(base)
        victim = _other_tenant(base)
        channel = noisy.agent(base, webhookRetrySchedule=[1, 1, 2, 2, 3, 3, 5, 5])
        _create_endpoint(base, noisy, channel, url=own.url("ok"))
        theirs = victim.agent(base)
        _create_endpoint(base, victim, theirs, url=other.url("ok"))
        await asyncio.sleep(2)
        # Warm-up (connections, caches), not timed: the first calls of a fresh stack are slower.
        await _respond_latencies(base, noisy, channel, own, 3)
        await _respond_latencies(base, victim, theirs, other, 3)
        alone_own = await _respond_latencies(base, noisy, channel, own, rounds)
        alone_other = await _respond_latencies(base, victim, theirs, other, rounds)
        bad = [
            _create_endpoint(base, noisy, channel, url=slow.url("slow")),
            _create_endpoint(base, noisy, channel, url=failing.url("fail")),
            _create_endpoint(base, noisy, channel, url=limited.url("limited"), rateLimit=1),
        ]
        await asyncio.sleep(1)  # the endpoint change reaches the dispatcher's cache
        async with aiohttp.ClientSession(headers={"x-api-key": noisy.api_key}) as agent, \
                aiohttp.ClientSession(headers={"Authorization": f"Bearer {noisy.token}"}) as human:  # fmt: skip
            for message_id in await _post_reviews(agent, base, channel, backlog):
                await respond(human, base, message_id)
        await own.wait_count(3 + rounds + backlog, 60)  # the healthy endpoint's share of the backlog
        await asyncio.sleep(1)  # the slow receiver holds its connections, the others queue
        held = (slow.started - slow.count, failing.started, len(limited.walls))
        beside_own = await _respond_latencies(base, noisy, channel, own, rounds)
        beside_other = await _respond_latencies(base, victim, theirs, other, rounds)
        async with httpx.AsyncClient(
            base_url=base, timeout=30, headers={"x-api-key": noisy.api_key}
        ) as client:
            for endpoint_id in bad:
                (await client.delete(f"/api/v1/agents/{channel}/endpoints/{endpoint_id}")).raise_for_status()
        await asyncio.sleep(hang_seconds + 2)  # the slow receiver's held requests end
        after_own = await _respond_latencies(base, noisy, channel, own, rounds)
        after_other = await _respond_latencies(base, victim, theirs, other, rounds)
    finally:
        for sink in (own, other, slow, failing, limited):
            await sink.stop()
    alone = {"same_channel": alone_own + after_own, "other_tenant": alone_other + after_other}
    beside = {"same_channel": beside_own, "other_tenant": beside_other}
    ratios = {k: statistics.median(beside[k]) / statistics.median(alone[k]) for k in alone}
    ratio = max(ratios.values())
    # Latencies, lower is better: the spread check reads their inverse, as for rates.
    moved = [
        unreliable_baseline(None, [1 / statistics.median(before), 1 / statistics.median(after)])
        for before, after in ((alone_own, after_own), (alone_other, after_other))
    ]
    return Result(
        name="Endpoint isolation",
        measure={
            "same_channel_p50_ms_beside": round(statistics.median(beside_own), 1),
            "same_channel_p99_ms": round(pct(beside_own, 0.99), 1),
            "other_tenant_p50_ms_beside": round(statistics.median(beside_other), 1),
            "other_tenant_p99_ms": round(pct(beside_other, 0.99), 1),
            "slow_in_flight": held[0],
            "failing_attempts": held[1],
            "limited_delivered": held[2],
        },
        baseline={
            "same_channel_alone_p50_ms": round(statistics.median(alone["same_channel"]), 1),
            "before_after_ms": f"{statistics.median(alone_own):.1f}/{statistics.median(after_own):.1f}",
            "other_tenant_alone_p50_ms": round(statistics.median(alone["other_tenant"]), 1),
            "other_before_after_ms": f"{statistics.median(alone_other):.1f}/{statistics.median(after_other):.1f}",
        },
        ratio=round(ratio, 2),
        target="<= 1.5x alone, for the same channel's healthy endpoint and another tenant's",
        met=ratio <= 1.5,
        unreliable=next((why for why in moved if why), None),
        notes=[
            f"{backlog} answered reviews on a channel whose endpoints are a healthy one, one hanging "
            f"{hang_seconds:.0f} s, one answering 500 (retried every 1-5 s) and one with rateLimit 1; then "
            f"{rounds} sequential responses timed to the healthy endpoint of that channel and {rounds} to "
            "another tenant's endpoint (respond call returned -> receiver has it), one dispatcher; alone: "
            f"{rounds} of each before the noisy endpoints were created and {rounds} after they were deleted; "
            f"ratios: same channel {ratios['same_channel']:.2f}x, other tenant {ratios['other_tenant']:.2f}x"
        ],
        series={
            "same channel alone ms": alone["same_channel"],
            "same channel beside ms": beside_own,
            "other tenant alone ms": alone["other_tenant"],
            "other tenant beside ms": beside_other,
        },
    )
