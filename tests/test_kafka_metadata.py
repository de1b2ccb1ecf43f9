"""The outbox's broker probe (``sayso_common.kafka_metadata``) against the real broker: it
lists the partitions of existing topics by name, knows the cluster id, and never creates the
topics it asks about."""

from __future__ import annotations

import pytest

from sayso_common.kafka import create_producer, ensure_topics
from sayso_common.kafka_metadata import cluster_view
from sayso_common.settings import ServiceSettings
from sayso_common.topics import all_topics
from tests.conftest import Infra


async def test_cluster_view_names_partitions_and_creates_nothing(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in infra.service_env(SAYSO_TOPIC_PREFIX="probe.", SAYSO_TOPIC_PARTITIONS="3").items():
        monkeypatch.setenv(name, value)
    settings = ServiceSettings()
    await ensure_topics(settings)
    topic = all_topics("probe.")[0]
    missing = "probe.never-created"
    producer = create_producer(settings)
    await producer.start()
    try:
        view = await cluster_view(producer.client, [topic, missing])
        assert isinstance(view.cluster_id, str)
        assert view.cluster_id
        assert view.partitions == {(topic, p) for p in range(3)}
        again = await cluster_view(producer.client, [missing])
        assert again.partitions == frozenset()  # asking did not create it
        assert again.cluster_id == view.cluster_id
    finally:
        await producer.stop()
