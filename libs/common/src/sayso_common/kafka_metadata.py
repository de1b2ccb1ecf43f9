"""A typed view of a Kafka broker's metadata, read without creating topics.

The outbox relay asks a broker, after every publish, whether the partitions it was acknowledged
on still exist and whether the cluster is the one it started with (a memory-only broker that
restarted lost everything; see ``outbox.BrokerStateLostError``). aiokafka's high-level metadata
refresh may auto-create topics, so this sends the protocol's own Metadata request with
``allow_auto_topic_creation=False`` and turns the response's positional tuples into names here,
in one place with its own test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaClient
from aiokafka.protocol.metadata import MetadataRequest


@dataclass(frozen=True)
class ClusterView:
    cluster_id: str | None
    # Every (topic, partition) the broker lists, whatever the partition's momentary state (a
    # leader election answers LEADER_NOT_AVAILABLE); an unknown topic lists none.
    partitions: frozenset[tuple[str, int]]


def parse(response: Any) -> ClusterView:
    """A Metadata response (v1+: ``topics`` rows are ``(error_code, name, is_internal,
    partitions)``, partition rows ``(error_code, partition, leader, replicas, isr, …)``)."""
    listed = frozenset((topic[1], part[1]) for topic in response.topics for part in topic[3])
    cluster_id = getattr(response, "cluster_id", None)
    return ClusterView(cluster_id if isinstance(cluster_id, str) else None, listed)


async def cluster_view(client: AIOKafkaClient, topics: list[str], node: int | None = None) -> ClusterView:
    """Metadata for ``topics`` from broker ``node`` (any broker if None)."""
    request = MetadataRequest(topics, allow_auto_topic_creation=False)
    return parse(await client.send(client.get_random_node() if node is None else node, request))
