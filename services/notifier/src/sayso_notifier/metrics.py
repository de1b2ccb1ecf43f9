"""Notifier metrics (Prometheus)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

NOTIFICATIONS = Counter(
    "sayso_notifications_total",
    "Notifications that reached a final state, by kind and outcome",
    ["kind", "outcome"],  # sent | failed | cancelled | skipped
)
ATTEMPTS = Counter(
    "sayso_notification_attempts_total",
    "Send attempts (SMTP or Slack), by kind and result",
    ["kind", "result"],  # sent | retry | failed
)
ATTEMPT_SECONDS = Histogram(
    "sayso_notification_attempt_seconds",
    "Duration of one send",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DEFERRED = Counter("sayso_notifications_deferred_total", "Notices held back by a recipient's quiet hours")
DUE = Gauge("sayso_notifications_due", "Pending notifications whose time has come")
IN_FLIGHT = Gauge("sayso_notifications_in_flight", "Notifications this process is sending")
CONSUMER_LAG = Gauge("sayso_notifier_consumer_lag", "Records behind the high watermark", ["topic"])
EVENTS_CONSUMED = Counter("sayso_notifier_events_total", "Events consumed from Kafka", ["type"])
LEASES_LOST = Counter(
    "sayso_notification_leases_lost_total", "Outcomes not recorded because another replica took the claim"
)
