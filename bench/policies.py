"""API ingest with policies (issue #29): the same review POSTed into a channel without rules and
into one whose policy holds 50 rules, none of which matches (so every rule is evaluated and the
review still waits for a person), in interleaved rounds of the same run. Both channels' POSTs
read the policy heads (one indexed query); the second also evaluates the 50 compiled filters."""

from __future__ import annotations

import httpx

from bench.harness import Account, BenchStack, Result
from bench.loadgen import LoadResult, load
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
