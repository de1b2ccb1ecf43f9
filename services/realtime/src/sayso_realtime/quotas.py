"""Per-tenant caps on live connections: SSE streams, parked long-polls and Socket.IO sockets, each
counted per owner account in this process. One API key opening thousands of them would otherwise
hold the gateway's file descriptors and memory for every other tenant.

The count is per replica (kept in memory, released when the connection ends, nothing to clean
up after a crash): behind N replicas a tenant may hold up to N times a limit."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sayso_common.errors import ErrorCode, RateLimitedError
from sayso_realtime.settings import RealtimeSettings

# A long-poll frees its place within its timeout and a stream whenever its client closes one:
# a client told to come back later is told to in a few seconds, not minutes.
RETRY_AFTER_SECONDS = 5


class TooManyConnectionsError(Exception):
    def __init__(self, what: str, limit: int, setting: str) -> None:
        super().__init__(
            f"this account already has {limit} {what} open on this server ({setting}); "
            "close one or retry later"
        )
        self.what = what
        self.limit = limit
        self.setting = setting


@dataclass
class Place:
    """One connection's place in its tenant's count; ``release`` gives it back (once)."""

    quota: ConnectionQuota
    owner_id: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.quota.give_back(self.owner_id)


@dataclass
class ConnectionQuota:
    """At most ``limit`` connections of one kind (``what``, named by ``setting``) per owner."""

    what: str
    limit: int
    setting: str
    open: Counter[str] = field(default_factory=Counter)

    def take(self, owner_id: str) -> Place:
        if self.open[owner_id] >= self.limit:
            raise TooManyConnectionsError(self.what, self.limit, self.setting)
        self.open[owner_id] += 1
        return Place(self, owner_id)

    def give_back(self, owner_id: str) -> None:
        self.open[owner_id] -= 1
        if self.open[owner_id] <= 0:
            del self.open[owner_id]


def too_many_connections(exc: TooManyConnectionsError) -> RateLimitedError:
    """The refusal of an SSE stream or a long-poll: the limit named, and when to try again."""
    return RateLimitedError(ErrorCode.TOO_MANY_CONNECTIONS, str(exc), retry_after=RETRY_AFTER_SECONDS)


@dataclass(frozen=True)
class Quotas:
    streams: ConnectionQuota
    polls: ConnectionQuota
    sockets: ConnectionQuota

    @classmethod
    def of(cls, settings: RealtimeSettings) -> Quotas:
        return cls(
            ConnectionQuota(
                "SSE streams",
                settings.realtime_max_streams_per_owner,
                "SAYSO_REALTIME_MAX_STREAMS_PER_OWNER",
            ),
            ConnectionQuota(
                "long-polls", settings.realtime_max_polls_per_owner, "SAYSO_REALTIME_MAX_POLLS_PER_OWNER"
            ),
            ConnectionQuota(
                "Socket.IO connections",
                settings.realtime_max_sockets_per_owner,
                "SAYSO_REALTIME_MAX_SOCKETS_PER_OWNER",
            ),
        )
