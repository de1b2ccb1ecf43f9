from __future__ import annotations

from pydantic import Field

from sayso_common.settings import ServiceSettings


class RealtimeSettings(ServiceSettings):
    http_port: int = 8102
    # Long-poll: Placet's contract is milliseconds, default and cap 30 s.
    wait_default_ms: int = Field(default=30_000, ge=1)
    wait_max_ms: int = Field(default=30_000, ge=1)
    # Resume: how far back a reconnecting client may ask, and how many events it gets at most
    # (the events collection's own TTL, set by the relay, bounds what exists at all).
    resume_window_seconds: int = Field(default=86_400, ge=1)
    resume_limit: int = Field(default=10_000, ge=1)
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0)
    # A stream whose client reads slower than events arrive is closed once this many are queued;
    # it reconnects with Last-Event-ID and loses nothing.
    sse_queue_size: int = Field(default=1_000, ge=1)
    # A socket with this many packets waiting to be sent is cut off (its client reconnects by itself
    # and resumes from history): a client that stopped reading must not hold the gateway's memory.
    # The queue holds references to packets shared by every socket, so the default is generous.
    socket_queue_size: int = Field(default=10_000, ge=1)
    # Events consumed recently, kept in memory so a resume never misses one the relay published
    # but has not yet copied into the events collection.
    recent_events: int = Field(default=5_000, ge=100)
    # How long start-up waits for the Kafka consumer to hold its partitions before serving.
    feed_start_timeout_seconds: float = Field(default=10.0, gt=0)
    # How often open sockets and SSE streams have their credential re-checked (one MongoDB query
    # for all their API keys, one for their users); a revoked key, an expired token or a removed
    # user loses its connections within about this long. SAYSO_REALTIME_REVALIDATE_SECONDS.
    realtime_revalidate_seconds: float = Field(default=5.0, gt=0)
    # Live connections one owner account (all its API keys and its user) may hold open on one
    # replica; beyond them a stream or poll is answered 429 with Retry-After and a socket's
    # connect is refused with code "too_many_connections".
    realtime_max_streams_per_owner: int = Field(default=100, ge=1)
    realtime_max_polls_per_owner: int = Field(default=1_000, ge=1)
    realtime_max_sockets_per_owner: int = Field(default=100, ge=1)
    # Stream tickets one credential (a session, an API key) may mint a minute, across replicas.
    realtime_tickets_per_minute: int = Field(default=600, ge=1)
