"""What the whole ``make run`` stack costs while nobody uses it (issue #36): CPU and memory of every
process (the five services, mongod, the Tansu broker, the Caddy edge) over a minute at rest.

The stack is the one ``make run`` starts (``sayso_devstack.stack.Stack``, edge included), in a
state directory of its own on free ports. After it is up it does one round of real work (an owner
logs in, an agent posts a review, a person answers it, the webhook arrives), then rests for the
warm-up, then every process's CPU time (``/proc/<pid>/stat``) is read every few seconds for the
window; resident memory (VmRSS, and PSS, which counts pages the processes share once) at its end.

The anchor (README): Placet's backend idled at 0.01 cores and 569 MB on this machine; Sayso at
0.67 cores and 804 MB before this scenario existed.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from bench.delivery import Sink
from bench.harness import Result
from bench.resources import Meter, cpu_seconds
from sayso_devstack.processes import Proc, free_port
from sayso_devstack.stack import Stack

WARM_UP_SECONDS = 20.0
WINDOW_SECONDS = 60.0
SAMPLE_SECONDS = 5.0
TARGET_CORES = 0.05
TARGET_MB = 600.0


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of a live process in MB."""
    rss = pss = 0.0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("Pss:"):
            pss = int(line.split()[1]) / 1024
    return rss, pss


async def _one_review(stack: Stack, creds: dict[str, str]) -> None:
    """An owner's first use: a review posted, answered, its webhook received."""
    sink = await Sink().start()
    try:
        async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
            login = await client.post(
                "/api/v1/auth/login",
                json={"email": creds["SAYSO_ADMIN_EMAIL"], "password": creds["SAYSO_ADMIN_PASSWORD"]},
            )
            human = {"Authorization": f"Bearer {login.raise_for_status().json()['token']}"}
            agent = {"x-api-key": creds["SAYSO_API_KEY"]}
            made = await client.post(
                "/api/v1/agents", json={"name": "idle-bench", "webhookUrl": sink.url("hook")}, headers=agent
            )
            channel = made.raise_for_status().json()["id"]
            posted = await client.post(
                "/api/v1/messages",
                json={"channelId": channel, "text": "warm-up", "review": {"type": "approval", "payload": {}}},
                headers=agent,
            )
            message = posted.raise_for_status().json()["id"]
            answered = await client.post(
                f"/api/v1/reviews/{message}/respond",
                json={"response": {"selectedOption": "approve"}},
                headers=human,
            )
            answered.raise_for_status()
        deadline = time.monotonic() + 30
        while sink.count < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if sink.count < 1:
            raise RuntimeError("the warm-up review's webhook never arrived")
    finally:
        await sink.stop()


def _cpu(procs: list[Proc]) -> dict[str, float]:
    return {p.name: cpu_seconds(p.popen.pid) for p in procs if p.alive}


async def run() -> Result:
    root = Path(tempfile.mkdtemp(prefix="sayso-bench-idle-"))
    env = {"SAYSO_DISPATCHER_ALLOWED_NETWORKS": "127.0.0.0/8", "SAYSO_HOME": str(root)}
    stack = Stack(state_dir=root / ".sayso", edge_port=free_port(), extra_env=env)
    try:
        creds = await asyncio.to_thread(stack.start)
        await _one_review(stack, creds)
        await asyncio.sleep(WARM_UP_SECONDS)
        procs = list(stack.procs)
        mongo = next(p for p in procs if p.name == "mongod")
        broker = next(p for p in procs if p.name == "tansu")
        meter = Meter(mongo, broker, [p for p in procs if p not in (mongo, broker)])
        try:
            window = meter.snapshot()
            first = last = _cpu(procs)
            began = tick = time.monotonic()
            series: dict[str, list[float]] = {"all": [], **{p.name: [] for p in procs}}
            while time.monotonic() - began < WINDOW_SECONDS:
                await asyncio.sleep(SAMPLE_SECONDS)
                now, cpu = time.monotonic(), _cpu(procs)
                for name in cpu:
                    series[name].append(round((cpu[name] - last[name]) / (now - tick), 4))
                series["all"].append(round(sum(cpu.values()) - sum(last.values()), 4) / (now - tick))
                tick, last = now, cpu
            seconds = time.monotonic() - began
            usage = meter.since(window)
        finally:
            meter.close()
        memory = {p.name: memory_mb(p.popen.pid) for p in procs}
    finally:
        await asyncio.to_thread(stack.stop)
    cores = {name: (last[name] - first[name]) / seconds for name in last}
    total_cores = sum(cores.values())
    total_rss = sum(rss for rss, _ in memory.values())
    total_pss = sum(pss for _, pss in memory.values())
    per_process = "; ".join(
        f"{name} {cores[name]:.4f} cores, {memory[name][0]:.0f} MB RSS ({memory[name][1]:.0f} PSS)"
        for name in cores
    )
    return Result(
        name="Idle",
        measure={
            "millicores": round(total_cores * 1000, 1),
            "rss_mb": round(total_rss),
            "pss_mb": round(total_pss),
        },
        baseline=None,
        ratio=None,
        target=f"<= {TARGET_CORES} cores, <= {TARGET_MB:.0f} MB RSS in all",
        met=total_cores <= TARGET_CORES and total_rss <= TARGET_MB,
        notes=[
            f"the make-run stack at rest: {WINDOW_SECONDS:.0f} s measured after one review answered "
            f"and {WARM_UP_SECONDS:.0f} s of warm-up. Per process: {per_process}. Placet's backend, "
            "measured on this machine (issue #36): 0.01 cores, 569 MB."
        ],
        series={name: values for name, values in series.items() if name == "all" or max(values) >= 0.002},
        resources=usage.as_dict(),
    )
