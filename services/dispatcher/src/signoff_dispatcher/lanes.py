"""Per-host lanes: deliveries queue by target host, each host runs at most ``per_host`` at a
time, and all hosts together at most ``total``. A receiver that hangs holds its own few slots,
never the others', so healthy receivers are not slowed by it."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Job = TypeVar("Job")


@dataclass
class _Lane(Generic[Job]):
    queue: deque[Job] = field(default_factory=deque)
    running: int = 0


class Lanes(Generic[Job]):
    def __init__(self, run: Callable[[Job], Awaitable[None]], per_host: int, total: int) -> None:
        self._run = run
        self._per_host = per_host
        self._slots = asyncio.Semaphore(total)
        self._lanes: dict[str, _Lane[Job]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.held = 0

    def submit(self, host: str, job: Job) -> None:
        lane = self._lanes.get(host)
        if lane is None:
            lane = self._lanes[host] = _Lane()
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
                job = lane.queue.popleft()
                try:
                    async with self._slots:
                        await self._run(job)
                except Exception:
                    # The job's lease lapses and another pass retries it; the lane goes on.
                    log.exception("delivery job failed", extra={"host": host})
                finally:
                    self.held -= 1
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
