"""Per-host circuit breakers: a host that fails nearly every request stops getting requests for
a while, so its deliveries wait in MongoDB instead of tying up connections and workers.

closed -> open when, among the last ``window`` results (at least ``min_calls``), the failure
ratio reaches ``failure_ratio``. open -> half-open after ``open_seconds``: one probe goes through;
its success closes the circuit, its failure opens it again. What counts as a success or a
failure is ``sayso_common.attempts.circuit_result`` (the operator page counts with it too).
Pure state over an injected clock.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sayso_common.settings import CircuitPolicy


class State(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class Circuit:
    policy: CircuitPolicy
    clock: Callable[[], float] = time.monotonic
    state: State = State.CLOSED
    opened_at: float = 0.0
    probing: bool = False
    results: deque[bool] = field(default_factory=deque)
    # When it first opened since it was last closed (failed probes keep it): how long the host
    # has been refused, for the operator's circuit_open incident.
    troubled_since: float | None = None

    def allow(self) -> bool:
        """May a request go now? In half-open, only one probe at a time."""
        if self.state is State.OPEN:
            if self.clock() - self.opened_at < self.policy.open_seconds:
                return False
            self.state = State.HALF_OPEN
            self.probing = False
        if self.state is State.HALF_OPEN:
            if self.probing:
                return False
            self.probing = True
        return True

    def retry_in(self) -> float:
        """Seconds until a refused request is worth trying again."""
        if self.state is State.OPEN:
            return max(0.0, self.policy.open_seconds - (self.clock() - self.opened_at))
        return 1.0

    def record(self, ok: bool | None) -> None:
        """One attempt's result: True the host is up, False it is not, None it says nothing
        (``attempts.circuit_result``). Whatever it is, a probe in flight is over."""
        if self.state is State.HALF_OPEN:
            self.probing = False
            if ok is None:
                return  # the next request is the probe
            if ok:
                self.state = State.CLOSED
                self.troubled_since = None
                self.results.clear()
            else:
                self._open()
            return
        if ok is None:
            return
        self.results.append(ok)
        while len(self.results) > self.policy.window:
            self.results.popleft()
        if self.policy.trips(list(self.results)):
            self._open()

    def open_for(self) -> float:
        """Seconds since it first opened, if it has not closed since; 0 while closed."""
        return 0.0 if self.troubled_since is None else self.clock() - self.troubled_since

    def _open(self) -> None:
        self.state = State.OPEN
        self.opened_at = self.clock()
        if self.troubled_since is None:
            self.troubled_since = self.opened_at
        self.results.clear()


class Breakers:
    """One circuit per host, created on first use."""

    def __init__(self, policy: CircuitPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self._policy = policy
        self._clock = clock
        self._circuits: dict[str, Circuit] = {}

    def __getitem__(self, host: str) -> Circuit:
        circuit = self._circuits.get(host)
        if circuit is None:
            if len(self._circuits) > 50_000:  # forget idle closed ones; state is only a hint
                self._circuits = {h: c for h, c in self._circuits.items() if c.state is not State.CLOSED}
            circuit = self._circuits[host] = Circuit(self._policy, self._clock)
        return circuit

    def open_count(self) -> int:
        return sum(1 for c in self._circuits.values() if c.state is not State.CLOSED)
