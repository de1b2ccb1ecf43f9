"""Per-host lanes (sayso_dispatcher.lanes) on their own: the job runner is a test double that
holds each job until the test lets it go, so every limit can be observed while it binds; and the
rule that says which tenant gets the next free slot."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field

import pytest

from sayso_dispatcher.lanes import Lanes, next_tenant


@dataclass(frozen=True)
class Job:
    host: str
    n: int
    tenant: str = ""


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
    with caplog.at_level(logging.ERROR, logger="sayso_dispatcher.lanes"):
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


@pytest.mark.parametrize(
    ("waiting", "running", "cap", "expected"),
    [
        ([], {}, 4, None),
        (["a"], {}, 4, "a"),
        (["a"], {"a": 4}, 4, None),  # at its cap: waits however many slots are free
        (["a"], {"a": 5}, 4, None),  # above it (the cap was lowered): waits too
        (["a", "b"], {}, 4, "a"),  # equals: the one served longest ago
        (["b", "a"], {}, 4, "b"),
        (["a", "b"], {"a": 3, "b": 1}, 4, "b"),  # fewest running first, whoever queued first
        (["a", "b"], {"a": 1, "b": 1}, 4, "a"),
        (["a", "b", "c"], {"a": 2, "b": 2, "c": 0}, 4, "c"),
        (["a", "b", "c"], {"a": 4, "b": 3, "c": 3}, 4, "b"),
        (["a", "b"], {"a": 4, "b": 4}, 4, None),
        (["a", "b"], {"a": 0, "b": 0, "idle": 0}, 1, "a"),
        (["a"], {"b": 9}, 4, "a"),  # a tenant with nothing waiting takes no turn
        (["a", "b"], {"a": 1}, 1, "b"),
        (["", "x"], {"": 2}, 3, "x"),  # the empty tenant name is a tenant like any other
    ],
)
def test_the_next_slot_goes_to_the_waiting_tenant_with_the_fewest_running(
    waiting: list[str], running: dict[str, int], cap: int, expected: str | None
) -> None:
    assert next_tenant(waiting, running, cap) == expected


def tenant_jobs(tenant: str, hosts: int, each: int) -> list[Job]:
    return [Job(f"{tenant}-h{h}.example", n, tenant) for n in range(each) for h in range(hosts)]


def submit_all(lanes: Lanes[Job], submitted: list[Job]) -> None:
    for job in submitted:
        lanes.submit(f"{job.tenant}|{job.host}", job, job.tenant)


def running_of(runner: Runner, tenant: str) -> int:
    return sum(count for host, count in runner.running.items() if host.startswith(f"{tenant}-"))


async def test_a_tenant_on_many_hosts_holds_at_most_its_share_and_another_runs_at_once() -> None:
    runner = Runner()
    lanes: Lanes[Job] = Lanes(runner, per_host=16, total=8, per_tenant=2)
    noisy = tenant_jobs("noisy", hosts=6, each=3)
    submit_all(lanes, noisy)
    await settle()
    assert running_of(runner, "noisy") == 2  # not 8: the other six slots stay free
    victim = Job("victim-h0.example", 0, "victim")
    submit_all(lanes, [victim])
    await settle()
    assert victim in runner.started  # while every noisy request still hangs
    runner.release(victim)
    while len(runner.finished) < len(noisy) + 1:
        runner.release(*runner.started)
        await settle()
    assert sorted(runner.finished, key=lambda j: (j.tenant, j.n, j.host)) == sorted(
        [*noisy, victim], key=lambda j: (j.tenant, j.n, j.host)
    )
    assert await lanes.close(grace=1) == []


async def test_freed_slots_go_round_robin_to_the_tenants_with_fewest_running() -> None:
    # Four slots, at most three per tenant: "a" queued everything first; as slots free up, "b"
    # and "c" get them before a's backlog does, and each tenant ends with its fair part.
    runner = Runner()
    lanes: Lanes[Job] = Lanes(runner, per_host=16, total=4, per_tenant=3)
    a = tenant_jobs("a", hosts=4, each=3)
    submit_all(lanes, a)
    await settle()
    assert running_of(runner, "a") == 3
    b, c = tenant_jobs("b", hosts=2, each=3), tenant_jobs("c", hosts=1, each=3)
    submit_all(lanes, [*b, *c])
    await settle()
    # The fourth slot was free: the first of the waiting tenants took it.
    assert [running_of(runner, t) for t in "abc"] == [3, 1, 0]
    first_a = next(job for job in runner.started if job.tenant == "a")
    runner.release(first_a)
    await settle()
    # a's freed slot goes to c (none running), not to a's backlog queued long before.
    assert [running_of(runner, t) for t in "abc"] == [2, 1, 1]
    runner.release(*(job for job in runner.started if job.tenant == "a"))
    await settle()
    # Two more freed: one each to b and c would tie them at 2; a is back to the fewest.
    assert sorted(running_of(runner, t) for t in "abc") == [1, 1, 2]
    assert runner.running.total() == 4
    while len(runner.finished) < len(a) + len(b) + len(c):
        runner.release(*runner.started)
        await settle()
    assert runner.peak_total <= 4
    assert await lanes.close(grace=1) == []


async def test_a_queued_job_waiting_for_its_tenants_turn_is_still_taken_back() -> None:
    runner = Runner()
    lanes: Lanes[Job] = Lanes(runner, per_host=4, total=8, per_tenant=1)
    submitted = tenant_jobs("t", hosts=1, each=3)
    submit_all(lanes, submitted)
    await settle()
    assert runner.started == submitted[:1]
    # Not started, not lost: a circuit that opens (or a close) hands both back.
    assert lanes.take_queued("t|t-h0.example") == submitted[1:]
    runner.release(*submitted[:1])
    await settle()
    assert runner.started == submitted[:1]
    assert lanes.held == 0
    assert await lanes.close(grace=1) == []
