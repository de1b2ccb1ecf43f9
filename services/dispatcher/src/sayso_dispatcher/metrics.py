"""Dispatcher metrics (Prometheus)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELIVERIES = Counter(
    "sayso_webhook_deliveries_total",
    "Deliveries that reached a final state, by outcome",
    ["outcome"],  # delivered | failed | gone | refused
)
ATTEMPTS = Counter(
    "sayso_webhook_attempts_total",
    "Webhook attempts (HTTP requests and Kafka sends), by result",
    # An answer's status class (1xx..5xx), else its sayso_common.attempts.ErrorKind, or
    # "acknowledged" for a record a Kafka destination took.
    ["result"],
)
ATTEMPT_SECONDS = Histogram(
    "sayso_webhook_attempt_seconds",
    "Duration of one webhook request",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
EVENT_TO_WEBHOOK_SECONDS = Histogram(
    "sayso_webhook_event_latency_seconds",
    "From the event's occurrence to the first attempt's answer",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60),
)
DUE = Gauge("sayso_webhook_due_deliveries", "Pending deliveries whose next attempt is due")
HELD = Gauge("sayso_webhook_held_deliveries", "Deliveries this process holds (queued or in flight)")
OPEN_CIRCUITS = Gauge("sayso_webhook_open_circuits", "Hosts whose circuit breaker is open or probing")
CONSUMER_LAG = Gauge("sayso_dispatcher_consumer_lag", "Records behind the high watermark", ["topic"])
EVENTS_CONSUMED = Counter("sayso_dispatcher_events_total", "Events consumed from Kafka", ["type"])
LEASES_LOST = Counter(
    "sayso_webhook_leases_lost_total", "Outcomes not recorded because another replica took the claim"
)
RECONCILED = Counter(
    "sayso_webhook_reconciled_total", "Deliveries created by reconciliation (their event never arrived)"
)
RATE_LIMITED = Counter(
    "sayso_webhook_rate_limited_total",
    "Deliveries put back for a later second by their endpoint's rate limit (not attempts)",
)
