"""Per-host lanes: deliveries queue by target host, each host runs at most ``per_host`` at a
time, each tenant at most ``per_tenant``, and all together at most ``total``. A receiver that
hangs holds its own few slots, never the others', so healthy receivers are not slowed by it; a
tenant with many slow receivers holds at most its own share of the process's slots.

When slots are short, the next free one goes to the waiting tenant with the fewest deliveries
running (ties: round robin), not to whichever job queued first: a tenant that queued a thousand
jobs does not make another tenant's one job wait behind them."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Job = TypeVar("Job")


def next_tenant(waiting: Iterable[str], running: Mapping[str, int], cap: int) -> str | None:
    """Which of the ``waiting`` tenants (in turn order: the one served longest ago first) gets the
    next free slot: the one with the fewest deliveries running, the earliest in turn among equals;
    a tenant already running ``cap`` gets none. None when every waiting tenant is at its cap."""
    best: str | None = None
    fewest = cap
    for tenant in waiting:
        count = running.get(tenant, 0)
        if count < fewest:
            best, fewest = tenant, count
    return best


class FairSlots:
    """``total`` request slots shared by tenants, at most ``per_tenant`` each, handed out by
    :func:`next_tenant` whenever one frees up."""

    def __init__(self, total: int, per_tenant: int) -> None:
        self._free = total
        self._cap = per_tenant
        self.running: Counter[str] = Counter()
        # tenant -> its waiters, in turn order: a tenant just served goes to the back.
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    def waiting(self, tenant: str) -> int:
        return len(self._waiting.get(tenant, ()))

    async def acquire(self, tenant: str) -> None:
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(tenant, deque()).append(granted)
        self._grant()
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release(tenant)  # granted just as it was cancelled: give it on
            else:
                self._forget(tenant, granted)
            raise

    def release(self, tenant: str) -> None:
        self.running[tenant] -= 1
        if self.running[tenant] <= 0:
            del self.running[tenant]
        self._free += 1
        self._grant()

    def _forget(self, tenant: str, granted: asyncio.Future[None]) -> None:
        queue = self._waiting.get(tenant)
        if queue is not None and granted in queue:
            queue.remove(granted)
            if not queue:
                del self._waiting[tenant]

    def _grant(self) -> None:
        while self._free > 0:
            tenant = next_tenant(self._waiting, self.running, self._cap)
            if tenant is None:
                return
            queue = self._waiting[tenant]
            granted = queue.popleft()
            if queue:
                self._waiting.move_to_end(tenant)
            else:
                del self._waiting[tenant]
            if granted.done():  # its waiter was cancelled
                continue
            self._free -= 1
            self.running[tenant] += 1
            granted.set_result(None)


@dataclass
class _Lane(Generic[Job]):
    tenant: str
    queue: deque[Job] = field(default_factory=deque)
    running: int = 0


class Lanes(Generic[Job]):
    def __init__(
        self,
        run: Callable[[Job], Awaitable[None]],
        per_host: int,
        total: int,
        per_tenant: int | None = None,
    ) -> None:
        self._run = run
        self._per_host = per_host
        self.slots = FairSlots(total, per_tenant or total)
        self._lanes: dict[str, _Lane[Job]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.held = 0

    def submit(self, host: str, job: Job, tenant: str = "") -> None:
        """Queue ``job`` on the lane ``host`` (one tenant's lanes never share a key)."""
        lane = self._lanes.get(host)
        if lane is None:
            lane = self._lanes[host] = _Lane(tenant)
        lane.queue.append(job)
        self.held += 1
        if lane.running < self._per_host:
            lane.running += 1
            task = asyncio.create_task(self._drain(host, lane), name=f"lane:{host}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def take_queued(self, host: str) -> list[Job]:
        """Remove the jobs still waiting for ``host`` (its circuit opened); the caller puts
        them back in MongoDB."""
        lane = self._lanes.get(host)
        if lane is None:
            return []
        jobs = list(lane.queue)
        lane.queue.clear()
        self.held -= len(jobs)
        return jobs

    async def _drain(self, host: str, lane: _Lane[Job]) -> None:
        try:
            while lane.queue:
                # The slot first, then the job: a job waiting for its tenant's turn is still in
                # the queue, where take_queued and close find it.
                await self.slots.acquire(lane.tenant)
                try:
                    if not lane.queue:
                        break
                    job = lane.queue.popleft()
                    try:
                        await self._run(job)
                    except Exception:
                        # The job's lease lapses and another pass retries it; the lane goes on.
                        log.exception("delivery job failed", extra={"host": host})
                    finally:
                        self.held -= 1
                finally:
                    self.slots.release(lane.tenant)
        finally:
            lane.running -= 1
            if lane.running == 0 and not lane.queue:
                self._lanes.pop(host, None)

    async def close(self, grace: float) -> list[Job]:
        """Stop: return the jobs that never started (the caller releases their claims), let
        in-flight requests finish for up to ``grace`` seconds and cancel the rest; a cancelled
        one keeps its lease and is taken over when it lapses."""
        unstarted: list[Job] = []
        for lane in self._lanes.values():
            unstarted.extend(lane.queue)
            self.held -= len(lane.queue)
            lane.queue.clear()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        return unstarted
