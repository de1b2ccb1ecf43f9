"""API ingest with policies (issue #29): the same review POSTed into a channel without rules and
into one whose policy holds 50 rules, none of which matches (so every rule is evaluated and the
review still waits for a person), in interleaved rounds of the same run. Both channels' POSTs
read the policy heads (one indexed query); the second also evaluates the 50 compiled filters."""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx

from bench.delivery import Sink, _respond_timings
from bench.harness import Account, BenchStack, Result
from bench.loadgen import LoadResult, load
from bench.realtime import pct
from bench.resources import Usage
from bench.verdict import unreliable_baseline

CONNECTIONS = 32
SECONDS = 8
ROUNDS = 2
RULES = 50


def _rules() -> list[dict[str, object]]:
    """Fifty rules of the kinds people write (tool, argument bounds, environment, text patterns),
    none matching the benchmark's message."""
    rules: list[dict[str, object]] = []
    for i in range(RULES):
        kind = i % 4
        if kind == 0:
            match: dict[str, object] = {"metadata.tool": f"tool-{i}", "metadata.args.amount": {"$lt": 100}}
        elif kind == 1:
            match = {"metadata.env": {"$in": ["staging", f"qa-{i}"]}, "review.type": "approval"}
        elif kind == 2:
            match = {"text": {"$regex": f"drop\\s+table\\s+t{i}", "$options": "i"}}
        else:
            match = {"$or": [{"metadata.risk": "low"}, {"metadata.args.path": {"$regex": f"^/tmp/{i}/"}}]}
        rules.append({"name": f"rule {i}", "match": match, "action": "approve" if i % 2 else "reject"})
    return rules


async def run(stack: BenchStack) -> Result:
    api = stack.service("api", instance="api-bench")
    base = f"http://127.0.0.1:{api.port}"
    account = Account.create(base)
    plain, ruled = account.agent(base), account.agent(base)
    headers = {"x-api-key": account.api_key}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        saved = await client.put(f"/api/v1/agents/{ruled}/policy", json={"rules": _rules()})
        saved.raise_for_status()

    def body(channel: str) -> dict[str, object]:
        return {
            "channelId": channel,
            "text": "Deploy v2.1 to production?",
            "metadata": {"tool": "deploy", "env": "production", "args": {"amount": 250}},
            "review": {"type": "approval"},
        }

    url = f"{base}/api/v1/messages"
    await load(url, body(plain), headers, CONNECTIONS, 2)  # warm caches and connections
    await load(url, body(ruled), headers, CONNECTIONS, 2)
    without: list[LoadResult] = []
    with_rules: list[LoadResult] = []
    usage_without, usage_with = Usage(), Usage()
    for _ in range(ROUNDS):
        window = stack.meter.snapshot()
        without.append(await load(url, body(plain), headers, CONNECTIONS, SECONDS))
        usage_without += stack.meter.since(window)
        window = stack.meter.snapshot()
        with_rules.append(await load(url, body(ruled), headers, CONNECTIONS, SECONDS))
        usage_with += stack.meter.since(window)
    best = max(with_rules, key=lambda r: r.rps)
    best_without = max(without, key=lambda r: r.rps)
    ratio = best.rps / best_without.rps
    errors = sum(r.errors for r in [*with_rules, *without])

    def cpu_us(usage: Usage, results: list[LoadResult]) -> int:
        served = sum(r.requests for r in results) or 1
        return round(usage.cpu_s.get("api-bench", 0.0) / served * 1e6)

    return Result(
        name=f"API ingest, {RULES} policy rules",
        measure={
            **best.speed(),
            "errors": errors,
            "tool": best.tool,
            "api_cpu_us_per_request": cpu_us(usage_with, with_rules),
        },
        baseline={
            **best_without.speed(),
            "api_cpu_us_per_request": cpu_us(usage_without, without),
        },
        ratio=round(ratio, 2),
        target=">= 0.9x the same channel without rules",
        met=ratio >= 0.9 and errors == 0,
        notes=[
            f"{CONNECTIONS} connections, {SECONDS}s x {ROUNDS} interleaved rounds, best of each; one uvicorn "
            f"worker; {RULES} channel rules, none matching (each evaluated)"
        ],
        series={"with rules rps": [r.rps for r in with_rules], "without rps": [r.rps for r in without]},
        resources=(usage_with + usage_without).as_dict(),
        unreliable=unreliable_baseline(ratio, [r.rps for r in without]),
    )


AUTO_ROUNDS = 60


async def auto_webhook(stack: BenchStack) -> Result:
    """Issue #29: a review a policy approves on arrival reaches the agent's webhook p99 <= 100 ms
    after the POST returns, at light load — sequential POSTs into a channel whose rule approves
    them, each timed from the POST's send and its return to the receiver's first request. Beside
    it, in the same run, the same path for a review a person answers (respond's return to the
    webhook), the figure the auto-answer's path is made of after its insert."""
    api = stack.service("api", instance="api-bench")
    stack.service("dispatcher", instance="dispatcher-bench")
    sink = await Sink().start()
    try:
        base = f"http://127.0.0.1:{api.port}"
        account = Account.create(base)
        channel = account.agent(base, webhookUrl=sink.url("auto"))
        rule = {"name": "staging deploys", "match": {"metadata.tool": "deploy", "metadata.env": "staging"},
                "action": "approve"}  # fmt: skip
        async with httpx.AsyncClient(
            base_url=base, headers={"x-api-key": account.api_key}, timeout=30
        ) as client:
            (await client.put(f"/api/v1/agents/{channel}/policy", json={"rules": [rule]})).raise_for_status()
            await asyncio.sleep(2)
            timings: list[tuple[float, float]] = []
            for n in range(AUTO_ROUNDS + 5):
                before = sink.count
                sent = time.perf_counter()
                posted = await client.post(
                    "/api/v1/messages",
                    json={
                        "channelId": channel,
                        "text": f"deploy #{n}",
                        "review": {"type": "approval"},
                        "metadata": {"tool": "deploy", "env": "staging", "args": {"build": n}},
                    },
                )
                returned = time.perf_counter()
                posted.raise_for_status()
                if posted.json()["review"]["status"] != "completed":
                    raise RuntimeError("the policy did not answer the review on arrival")
                arrived = await sink.next_arrival(before)
                if n >= 5:  # the first few warm the dispatcher's connection and caches
                    timings.append(((arrived - sent) * 1000, (arrived - returned) * 1000))
        person_channel = account.agent(base, webhookUrl=sink.url("person"))
        await asyncio.sleep(1)
        person = [r for _, r in await _respond_timings(base, account, person_channel, sink, 30)]
    finally:
        await sink.stop()
    from_send = [s for s, _ in timings]
    from_return = [r for _, r in timings]
    p99 = pct(from_return, 0.99)
    return Result(
        name="Auto-approved review to webhook",
        measure={
            "p50_ms_after_return": round(statistics.median(from_return), 1),
            "p99_ms_after_return": round(p99, 1),
            "p50_ms_from_send": round(statistics.median(from_send), 1),
            "p99_ms_from_send": round(pct(from_send, 0.99), 1),
        },
        baseline={
            "person_answer_p50_ms_after_return": round(statistics.median(person), 1),
            "person_answer_p99_ms_after_return": round(pct(person, 0.99), 1),
        },
        ratio=None,
        target="p99 <= 100 ms after the POST returns",
        met=p99 <= 100,
        notes=[
            f"{AUTO_ROUNDS} sequential POSTs (after 5 warm-up) answered by a channel rule on arrival; "
            "timed to the receiver's first request. Baseline: 30 person answers, respond's return to the "
            "webhook, same run"
        ],
        series={"after return ms": from_return, "from send ms": from_send},
    )
