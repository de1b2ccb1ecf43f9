"""The consumer groups' failure detection (issue #30 item 5): the session timeout the dispatcher
ships with, the heartbeat derived from it, and the metrics that show rebalances."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY
from sayso_service.consumers import AssignmentWatch, heartbeat_interval_ms

from sayso_dispatcher.consumer import group
from sayso_dispatcher.settings import DispatcherSettings


def _sample(name: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"group": "unit-test-group"})


@pytest.mark.parametrize(
    ("session_ms", "heartbeat_ms"),
    [(1_000, 250), (2_000, 500), (3_000, 750), (10_000, 2_500), (45_000, 11_250)],
)
def test_heartbeat_is_a_quarter_of_the_session(session_ms: int, heartbeat_ms: int) -> None:
    assert heartbeat_interval_ms(session_ms) == heartbeat_ms


def test_dispatcher_group_notices_a_dead_replica_in_three_seconds() -> None:
    # Measured (bench.failover): a SIGKILLed member's partitions wait for its session to lapse,
    # then for the rebalance; 10 s sessions held them ~17 s.
    config = group(DispatcherSettings(secret_key="k" * 32))
    assert config.session_timeout_ms == 3_000
    assert heartbeat_interval_ms(config.session_timeout_ms) == 750


def test_assignment_watch_counts_rebalances_and_partitions_held() -> None:
    watch = AssignmentWatch("unit-test-group")
    before = _sample("sayso_consumer_assignments_total") or 0.0
    watch.on_partitions_assigned({TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("u", 0)})
    assert _sample("sayso_consumer_partitions_assigned") == 3
    watch.on_partitions_revoked({TopicPartition("t", 0)})
    assert (
        _sample("sayso_consumer_partitions_assigned") == 0
    )  # eager: everything is handed back until the new split
    watch.on_partitions_assigned({TopicPartition("t", 0)})
    assert _sample("sayso_consumer_partitions_assigned") == 1
    assert _sample("sayso_consumer_assignments_total") == before + 2
