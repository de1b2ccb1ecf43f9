"""Per-host lanes (signoff_dispatcher.lanes) on their own: the job runner is a test double that
holds each job until the test lets it go, so every limit can be observed while it binds."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field

import pytest

from signoff_dispatcher.lanes import Lanes


@dataclass(frozen=True)
class Job:
    host: str
    n: int


@dataclass
class Runner:
    """Runs a job by waiting until the test releases it; records what ran, in what order, and the
    most jobs in flight at once, per host and overall."""

    fail: set[Job] = field(default_factory=set)
    started: list[Job] = field(default_factory=list)
    finished: list[Job] = field(default_factory=list)
    running: Counter[str] = field(default_factory=Counter)
    peak: Counter[str] = field(default_factory=Counter)
    peak_total: int = 0
    _gates: dict[Job, asyncio.Event] = field(default_factory=dict)

    async def __call__(self, job: Job) -> None:
        self.started.append(job)
        self.running[job.host] += 1
        self.peak[job.host] = max(self.peak[job.host], self.running[job.host])
        self.peak_total = max(self.peak_total, self.running.total())
        try:
            await self._gate(job).wait()
            if job in self.fail:
                raise RuntimeError(f"receiver of {job} broke")
            self.finished.append(job)
        finally:
            self.running[job.host] -= 1

    def _gate(self, job: Job) -> asyncio.Event:
        return self._gates.setdefault(job, asyncio.Event())

    def release(self, *jobs: Job) -> None:
        for job in jobs:
            self._gate(job).set()

    def release_host(self, host: str) -> None:
        self.release(*(job for job in self.started if job.host == host))


async def settle() -> None:
    """Let every task that can make progress do so."""
    for _ in range(20):
        await asyncio.sleep(0)


def jobs(host: str, count: int) -> list[Job]:
    return [Job(host, n) for n in range(count)]


@pytest.mark.parametrize(("per_host", "count"), [(1, 1), (1, 4), (2, 5), (3, 3), (4, 2)])
async def test_a_host_runs_at_most_per_host_jobs_in_submission_order(per_host: int, count: int) -> None:
    runner = Runner()
    lanes = Lanes(runner, per_host=per_host, total=100)
    for job in jobs("a.example", count):
        lanes.submit(job.host, job)
    await settle()
    assert len(runner.started) == min(per_host, count)
    while len(runner.finished) < count:
        runner.release_host("a.example")
        await settle()
    assert runner.started == jobs("a.example", count)
    assert runner.peak["a.example"] == min(per_host, count)
    assert await lanes.close(grace=1) == []


@pytest.mark.parametrize(("per_host", "total", "hosts"), [(2, 3, 3), (4, 2, 3), (1, 5, 8), (3, 1, 2)])
async def test_all_hosts_together_run_at_most_total_jobs(per_host: int, total: int, hosts: int) -> None:
    runner = Runner()
    lanes = Lanes(runner, per_host=per_host, total=total)
    submitted = [job for h in range(hosts) for job in jobs(f"h{h}.example", 3)]
    for job in submitted:
        lanes.submit(job.host, job)
    await settle()
    assert runner.running.total() == min(total, hosts * min(per_host, 3))
    while len(runner.finished) < len(submitted):
        runner.release(*runner.started)
        await settle()
    assert runner.peak_total <= total
    assert max(runner.peak.values()) <= per_host
    assert sorted(runner.finished, key=lambda j: (j.host, j.n)) == submitted


async def test_a_hung_host_holds_only_its_own_slots() -> None:
    runner = Runner()
    lanes = Lanes(runner, per_host=2, total=4)
    for job in jobs("hung.example", 6):
        lanes.submit(job.host, job)
    for job in jobs("ok.example", 10):
        lanes.submit(job.host, job)
    # The hung host's two slots never come back; the healthy host still gets through everything.
    for _ in range(10):
        runner.release_host("ok.example")
        await settle()
    assert [job for job in runner.finished if job.host == "ok.example"] == jobs("ok.example", 10)
    assert runner.running["hung.example"] == 2
    # Its queued jobs are handed back, never started; the two in flight are cancelled on close.
    assert lanes.take_queued("hung.example") == jobs("hung.example", 6)[2:]
    assert await lanes.close(grace=0.01) == []
    assert [job for job in runner.started if job.host == "hung.example"] == jobs("hung.example", 2)
    assert runner.running.total() == 0


async def test_a_failing_job_is_logged_and_its_lane_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    first, broken, last = jobs("a.example", 3)
    runner = Runner(fail={broken})
    lanes = Lanes(runner, per_host=1, total=1)
    for job in (first, broken, last):
        lanes.submit(job.host, job)
    with caplog.at_level(logging.ERROR, logger="signoff_dispatcher.lanes"):
        for job in (first, broken, last):
            runner.release(job)
            await settle()
    assert runner.finished == [first, last]
    assert [r.message for r in caplog.records] == ["delivery job failed"]
    assert getattr(caplog.records[0], "host", None) == "a.example"


async def test_take_queued_returns_only_what_has_not_started() -> None:
    runner = Runner()
    lanes = Lanes(runner, per_host=1, total=10)
    waiting = jobs("a.example", 4)
    for job in waiting:
        lanes.submit(job.host, job)
    lanes.submit("b.example", Job("b.example", 0))
    await settle()
    assert lanes.take_queued("a.example") == waiting[1:]
    assert lanes.take_queued("a.example") == []
    assert lanes.take_queued("never.example") == []
    runner.release(waiting[0], Job("b.example", 0))
    await settle()
    assert runner.started == [waiting[0], Job("b.example", 0)]
    assert runner.finished == [waiting[0], Job("b.example", 0)]
    # The lane is usable again after it emptied.
    lanes.submit("a.example", waiting[1])
    await settle()
    runner.release(waiting[1])
    await settle()
    assert runner.finished[-1] == waiting[1]


async def test_close_returns_unstarted_jobs_and_waits_for_in_flight_ones_within_the_grace() -> None:
    runner = Runner()
    lanes = Lanes(runner, per_host=1, total=2)
    quick, slow = Job("quick.example", 0), Job("slow.example", 0)
    queued = jobs("quick.example", 4)[1:]
    for job in (quick, *queued, slow):
        lanes.submit(job.host, job)
    await settle()
    assert runner.started == [quick, slow]
    closing = asyncio.create_task(lanes.close(grace=0.5))
    await settle()
    runner.release(quick)  # finishes within the grace; ``slow`` never does and is cancelled
    unstarted = await closing
    assert unstarted == queued
    assert runner.finished == [quick]
    assert runner.started == [quick, slow]
    assert runner.running.total() == 0
