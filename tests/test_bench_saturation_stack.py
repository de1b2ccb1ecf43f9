"""The saturation scenario's probe and verdict on real servers (bench/saturation.py, issue #30):
at a rate the pipeline carries no queue grows; with the notifier stopped (SIGSTOP) its consumer
group's lag grows and the step is not sustained, the dispatcher's lag does not; once it runs
again every queue drains. Asserts what the probe saw, never a speed."""

from __future__ import annotations

import os
import signal

import pytest

from bench.harness import BenchStack
from bench.loaded import Pipeline
from bench.saturation import Plan, Ramp

pytestmark = pytest.mark.slow

QUEUES = {"outbox", "lag dispatcher", "lag notifier", "lag realtime", "pending deliveries", "webhooks owed"}


async def test_the_probe_sees_the_lag_of_a_stopped_consumer_grow_and_drain() -> None:
    stack = BenchStack.start()
    try:
        pipeline = await Pipeline.start(stack)
        notifier = next(p for p in stack.procs if p.name == "notifier-bench")
        try:
            ramp = Ramp(pipeline, Plan(warmup=1, window=6, drain=60))
            async with ramp.running():
                carried, _ = await ramp.hold(10)
                os.kill(notifier.popen.pid, signal.SIGSTOP)
                try:
                    stalled, _ = await ramp.hold(10)
                finally:
                    os.kill(notifier.popen.pid, signal.SIGCONT)
                drained = await ramp.drain()
        finally:
            await pipeline.stop()
    finally:
        stack.stop()
    assert set(carried.queues) == QUEUES
    assert carried.sustained, carried.why_not
    assert carried.posted > 0
    assert carried.webhooks > 0
    assert any(why.startswith("lag notifier grew") for why in stalled.why_not), stalled.why_not
    assert not any(why.startswith("lag dispatcher") for why in stalled.why_not), stalled.why_not
    assert stalled.queues["lag notifier"][-1] > stalled.queues["lag notifier"][0]
    assert drained, ramp.timeline[-3:]
