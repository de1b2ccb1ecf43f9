"""Per-endpoint rate limits (deliveries per second), held across every dispatcher replica: one
counter document per endpoint and second in ``rate_limits`` (``sayso_common.ratelimit.count``,
the fixed windows the API and the gateway limit with too), bumped atomically before each
request. A delivery over the limit is not attempted: it goes back to MongoDB, due in a later
second, and keeps its place in the retry schedule.

Fixed one-second windows: within any window at most ``limit`` requests start, whichever replica
sends them (a burst across a window boundary can reach twice that within one second). Each
process remembers which endpoints are full for the current second, so a backlog costs one
counter write per window and replica rather than one per delivery held.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sayso_common import ratelimit
from sayso_common.mongo import Database


def spread(count: int, limit: int, start: float) -> list[float]:
    """When each of ``count`` deferred deliveries may go (epoch seconds): ``limit`` a second from
    ``start`` on, evenly spaced within each second, so a backlog drains at the limit instead of
    all of it waking at once every second."""
    return [start + i // limit + (i % limit) / limit for i in range(count)]


class EndpointRates:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock
        self._full: dict[str, int] = {}  # endpoint id -> the second it is known to be full in

    async def admit(self, endpoint_id: str, limit: int) -> float | None:
        """Count one request to the endpoint: None, it may go now; else the time (epoch seconds)
        of the next window, before which it must not."""
        now = self._clock()
        second = int(now)
        if self._full.get(endpoint_id) == second:
            return second + 1.0
        hits, _ = await ratelimit.count(self._db, f"endpoint:{endpoint_id}", 1, now)
        if hits <= limit:
            return None
        if len(self._full) > 10_000:
            self._full = {k: v for k, v in self._full.items() if v >= second}
        self._full[endpoint_id] = second
        return second + 1.0
