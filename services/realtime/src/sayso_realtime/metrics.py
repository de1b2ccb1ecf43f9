"""Prometheus metrics of the realtime gateway. Gauges read live counts when scraped."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter(
    "sayso_realtime_events_consumed_total", "Events read from Kafka (before dedupe)", ["type"]
)
DUPLICATES = Counter(
    "sayso_realtime_duplicate_events_total", "Events dropped because their id was already seen"
)
# From the moment the state changed (event occurred_at) until this process handed the event to
# every local waiter, socket and stream: the latency a human's answer takes to reach an agent.
FANOUT_LATENCY = Histogram(
    "sayso_realtime_fanout_latency_seconds",
    "Time from an event's occurrence to its fan-out in this process",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
WAITERS = Gauge("sayso_realtime_waiters", "Long-poll requests waiting for a review outcome")
SOCKETS = Gauge("sayso_realtime_sockets", "Connected Socket.IO clients on /ws")
STREAMS = Gauge("sayso_realtime_sse_streams", "Open SSE streams")
WAITS = Counter("sayso_realtime_waits_total", "Long-poll answers by status", ["status"])
REPLAYED = Counter("sayso_realtime_replayed_events_total", "Missed events sent on resume", ["via"])
DROPPED_STREAMS = Counter(
    "sayso_realtime_slow_streams_closed_total", "SSE streams closed because the client fell behind"
)
DROPPED_SOCKETS = Counter(
    "sayso_realtime_slow_sockets_dropped_total",
    "Sockets cut off because the client fell behind (it reconnects and resumes)",
)
WATCHED_CREDENTIALS = Gauge(
    "sayso_realtime_watched_credentials", "Distinct credentials of open sockets and SSE streams"
)
REVALIDATIONS = Counter(
    "sayso_realtime_credential_revalidations_total",
    "Rounds re-checking the credentials of open connections, by outcome",
    ["outcome"],
)
REVOKED_CONNECTIONS = Counter(
    "sayso_realtime_revoked_connections_total",
    "Sockets and SSE streams closed because their credential no longer holds",
    ["reason"],
)
