"""Dispatcher settings. Every dispatcher-only setting carries the ``dispatcher_`` prefix, so the
environment names read ``SAYSO_DISPATCHER_…``; the settings it shares with the notifier
(:class:`sayso_service.leased_worker.LeasedWorkerSettings`: ``lease_seconds``, ``concurrency`` …)
are read under the same prefix (``SAYSO_DISPATCHER_LEASE_SECONDS``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode
from sayso_service.leased_worker import (
    AtLeastOne,
    LeasedWorkerSettings,
    PositiveSeconds,
    RetrySchedule,
    SessionTimeoutMs,
    split_list,
    worker_settings,
)

from sayso_common.attempts import RETRY_AFTER_MAX, WEBHOOK_SCHEDULE
from sayso_common.kafka_destinations import DEFAULT_TOPIC_PREFIX, check_allowed_hosts, check_topic_prefix
from sayso_common.settings import CircuitSettings

DEFAULT_SCHEDULE = WEBHOOK_SCHEDULE


class DispatcherSettings(LeasedWorkerSettings, CircuitSettings):
    """The shared worker settings (:class:`LeasedWorkerSettings`) read as ``SAYSO_DISPATCHER_…``,
    with the dispatcher's own defaults, and the dispatcher's alone."""

    model_config = worker_settings("dispatcher")

    http_port: int = 8103
    group_id: str = "sayso-dispatcher"
    # A replica that stops heartbeating (SIGKILL, a lost host) holds its partitions this long, then
    # the rebalance (~2 s on Tansu) hands them over (bench.failover: 3 s -> taken over in ~5.5 s,
    # 10 s -> ~17 s). The heartbeat is a quarter of it, on the event loop: 3 s still rode out a
    # loop blocked 1.2 s every 3 s with no false rebalance. Tansu keeps the session of the member
    # that created the group (until the group is gone); Kafka takes each member's own.
    session_timeout_ms: SessionTimeoutMs = 3_000
    max_poll_records: AtLeastOne = 500
    # Requests in flight per process (the shared setting), and per host.
    concurrency: AtLeastOne = 256
    dispatcher_per_host_concurrency: int = Field(default=16, ge=1)
    # The share of dispatcher_concurrency one tenant (owner account) may hold at once, however many
    # hosts it sends to: a tenant whose receivers are all slow keeps the rest for the others.
    dispatcher_tenant_share: float = Field(default=0.25, gt=0, le=1)
    # Deliveries held in memory (queued or in flight); beyond it new work waits in MongoDB.
    dispatcher_max_held: int = Field(default=5_000, ge=1)
    # Renewed while held.
    lease_seconds: PositiveSeconds = 30.0
    # An agent's own schedule replaces it.
    retry_schedule: RetrySchedule = Field(default_factory=lambda: list(DEFAULT_SCHEDULE))
    # Retry-After is honoured up to this many seconds; a longer ask waits this long (the notifier
    # keeps the same default, sayso_common.attempts.RETRY_AFTER_MAX).
    dispatcher_retry_after_max_seconds: float = Field(default=RETRY_AFTER_MAX, ge=0)
    # DNS servers the guard resolves with ("10.0.0.2, 10.0.0.3:5353"); empty = the system resolver.
    # Pin them when the system resolver is not one you trust to answer every lookup.
    dispatcher_dns_servers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Kafka endpoints on another cluster: the bootstrap hosts they may name ("kafka.example.com,
    # 10.0.0.5:9093": a host, any port, or host:port). Empty: only this cluster's own topics.
    dispatcher_kafka_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # On this cluster a Kafka endpoint's topic must start with this prefix (never one of the
    # stack's own topics, nor Kafka's internal __ ones).
    dispatcher_kafka_topic_prefix: str = DEFAULT_TOPIC_PREFIX
    # A producer for another cluster unused this long is closed (they are cached per bootstrap
    # servers and security settings).
    dispatcher_kafka_idle_seconds: float = Field(default=300.0, gt=0)
    # Circuit breaker per host: SAYSO_DISPATCHER_CIRCUIT_* (see CircuitSettings).
    # Operator events (sayso_common.incidents). An explicit endpoint is disabled once this many of
    # its deliveries in a row failed for good (0: never; a 410 disables it at once either way).
    dispatcher_disable_after_failures: int = Field(default=20, ge=0)
    # A circuit open (or probing) this long since it last closed is an incident (0: never told).
    dispatcher_circuit_alert_seconds: float = Field(default=900.0, ge=0)
    # Due deliveries one sweep claims at most.
    dispatcher_claim_batch: int = Field(default=200, ge=1)
    # The count is kept.
    attempts_kept: AtLeastOne = 25
    # Reconciliation: answered or expired reviews whose event never became a delivery (the broker
    # lost it). Only reviews closed more than ``grace`` ago and less than ``window`` ago.
    dispatcher_reconcile_interval_seconds: float = Field(default=60.0, gt=0)
    dispatcher_reconcile_grace_seconds: float = Field(default=60.0, ge=0)
    dispatcher_reconcile_window_seconds: float = Field(default=86_400.0, gt=0)
    dispatcher_reconcile_batch: int = Field(default=500, ge=1)
    dispatcher_relay_lease_seconds: float = Field(default=10.0, gt=0)
    # Allocations between young-generation collections. The interpreter's default (700) spent
    # about a tenth of the dispatcher's CPU in the collector under load; 0 keeps that default.
    dispatcher_gc_gen0_threshold: int = Field(default=50_000, ge=0)

    _dns = field_validator("dispatcher_dns_servers", mode="before")(split_list)
    _kafka_hosts = field_validator("dispatcher_kafka_allowed_hosts", mode="before")(split_list)
    _kafka_hosts_shape = field_validator("dispatcher_kafka_allowed_hosts")(check_allowed_hosts)
    _kafka_topic_prefix = field_validator("dispatcher_kafka_topic_prefix")(check_topic_prefix)

    def tenant_concurrency(self) -> int:
        """Requests one tenant may have in flight at once in this process."""
        return max(1, int(self.concurrency * self.dispatcher_tenant_share))
