"""The chaos loop: every few seconds SIGKILL a random replica of a random service, the least
killed service first (the devstack supervisor restarts it on its port); once restart the broker
(memory-only: it comes back empty); once take MongoDB away for a while. Every fault is recorded as
a window, from the moment it is injected until the thing is back (the replica answers /healthz,
the broker listens, MongoDB is primary again)."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
from collections import Counter
from dataclasses import dataclass, field

import httpx

from bench.soak.journal import Journal, Window, WindowKind
from sayso_devstack.processes import SERVICES
from sayso_devstack.stack import Stack

log = logging.getLogger("sayso.soak")

# How long a killed replica may take to come back before the soak calls it lost.
RECOVERY_TIMEOUT = 180.0


@dataclass(frozen=True)
class ChaosPlan:
    kill_every: float = 5.0  # mean seconds between kills (each 0.6x-1.4x of it)
    first_kill: float = 3.0
    broker_at: float = 0.3  # fractions of the run
    broker_down: float = 2.0
    mongo_at: float = 0.6
    mongo_down: float = 10.0
    # No fault starts in the last seconds of traffic, so the run ends with everything back.
    quiet_tail: float = 10.0
    # No kill this shortly before an outage, which waits for every killed replica to be back.
    quiet_before_outage: float = 4.0


@dataclass
class Chaos:
    stack: Stack
    journal: Journal
    plan: ChaosPlan
    rng: random.Random
    _watchers: set[asyncio.Task[None]] = field(default_factory=set)

    async def run(self, seconds: float) -> None:
        clock = self.journal.clock
        last_fault = seconds - self.plan.quiet_tail
        # (due, kind, target, what it is, how long down), in the order they come.
        outages: list[tuple[float, WindowKind, str, str, float]] = [
            (self.plan.broker_at * seconds, "broker", "tansu", "kafka", self.plan.broker_down),
            (self.plan.mongo_at * seconds, "mongo", "mongod", "mongodb", self.plan.mongo_down),
        ]
        next_kill = self.plan.first_kill
        async with httpx.AsyncClient(timeout=2.0) as probe:
            while clock.now() < last_fault:
                now = clock.now()
                if outages and now >= outages[0][0]:
                    await self._outage(*outages.pop(0)[1:])
                    next_kill = max(next_kill, clock.now() + self.plan.first_kill)
                elif now >= next_kill and outages and outages[0][0] - now < self.plan.quiet_before_outage:
                    next_kill = outages[0][0]  # the replicas killed so far come back meanwhile
                elif now >= next_kill:
                    self._kill(probe)
                    next_kill = now + self.plan.kill_every * self.rng.uniform(0.6, 1.4)
                await asyncio.sleep(0.1)
            # On a busy host replicas come back slowly, outages wait for them, and the run can end
            # with an outage not injected or a service never killed: both happen now instead, the
            # run only gets longer.
            for outage in outages:
                await self._outage(*outage[1:])
            for service in self._replicated():
                if service not in self._killed():
                    self._kill(probe, service)
            await self._settle()

    def _down(self) -> set[str]:
        return {w.service for w in self.journal.windows if w.kind == "kill" and w.end is None}

    def _replicated(self) -> list[str]:
        return [s for s in SERVICES if len(self.stack.processes_of(s)) > 1]

    def _killed(self) -> Counter[str]:
        return Counter(w.service for w in self.journal.windows if w.kind == "kill")

    def _kill(self, probe: httpx.AsyncClient, service: str | None = None) -> None:
        if service is None:
            # Only services with every replica up: one replica of each always carries the load.
            candidates = [s for s in self._replicated() if s not in self._down()]
            if not candidates:
                return
            # The least killed service first (ties drawn at random), so even a short run hits each.
            killed = self._killed()
            fewest = min(killed[s] for s in candidates)
            service = self.rng.choice([s for s in candidates if killed[s] == fewest])
        victim = self.rng.choice(self.stack.processes_of(service))
        window = Window("kill", victim.name, service, self.journal.clock.now())
        self.journal.windows.append(window)
        self.journal.kills.append(victim.name)
        log.info("SIGKILL %s at %.1fs", victim.name, window.start)
        os.kill(victim.popen.pid, signal.SIGKILL)  # the supervisor reaps and restarts it
        task = asyncio.create_task(self._until_back(probe, window, victim.popen.pid))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _until_back(self, probe: httpx.AsyncClient, window: Window, pid: int) -> None:
        clock = self.journal.clock
        deadline = clock.now() + RECOVERY_TIMEOUT
        while clock.now() < deadline:
            # The supervisor's new process of that name (on its port, or a new one if it was taken).
            restarted = [
                p
                for p in self.stack.processes_of(window.service)
                if p.name == window.target and p.popen.pid != pid
            ]
            if restarted:
                try:
                    if (await probe.get(f"http://127.0.0.1:{restarted[0].port}/healthz")).status_code == 200:
                        window.end = clock.now()
                        return
                except httpx.HTTPError:
                    pass
            await asyncio.sleep(0.2)
        # Left open: the report names the replica that never came back.

    async def _settle(self) -> None:
        """Until every killed replica is back (or given up on)."""
        while self._watchers:
            await asyncio.gather(*list(self._watchers))

    async def _outage(self, kind: WindowKind, target: str, service: str, down: float) -> None:
        # Once every killed replica is back: each window has one cause, and no replica has to
        # start without its database.
        await self._settle()
        window = Window(kind, target, service, self.journal.clock.now())
        self.journal.windows.append(window)
        log.info("%s down at %.1fs", target, window.start)
        await asyncio.to_thread(self.stack.take_down, target)
        await asyncio.sleep(down)
        await asyncio.to_thread(self.stack.bring_back, target)
        window.end = self.journal.clock.now()
        log.info("%s back at %.1fs", target, window.end)
