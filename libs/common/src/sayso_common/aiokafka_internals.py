"""Every use of aiokafka beyond its public API, in one place (issue #28 item 5). Each function
names what it relies on; ``tests/test_library_contracts.py`` fails if the pinned aiokafka (an
exact pin in libs/common/pyproject.toml) stops behaving so.

- :func:`cluster_view`: the protocol's own Metadata request, sent with the client's ``send``.
- :func:`partition_leader`: the producer client's cluster metadata (``client.cluster``).
- :func:`set_fetch_wait`: the fetcher's private ``_fetch_max_wait_ms``, read for every fetch.
- :func:`refresh_metadata`: the client's ``fetch_all_metadata`` (readiness).

A typed view of a Kafka broker's metadata, read without creating topics: the outbox relay asks a broker, after every publish, whether the partitions it was acknowledged
on still exist and whether the cluster is the one it started with (a memory-only broker that
restarted lost everything; see ``outbox.BrokerStateLostError``). aiokafka's high-level metadata
refresh may auto-create topics, so this sends the protocol's own Metadata request with
``allow_auto_topic_creation=False`` and turns the response's positional tuples into names here,
in one place with its own test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
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


def partition_leader(producer: AIOKafkaProducer, topic: str, partition: int) -> int | None:
    """The broker the producer's metadata names as ``topic``/``partition``'s leader (None when
    unknown): the one to ask about a write it just acknowledged."""
    leader: int | None = producer.client.cluster.leader_for_partition(TopicPartition(topic, partition))
    return leader


async def refresh_metadata(producer: AIOKafkaProducer) -> None:
    """Read the whole cluster's metadata with the producer's client (it raises when no broker
    answers)."""
    await producer.client.fetch_all_metadata()


def set_fetch_wait(consumer: AIOKafkaConsumer, wait_ms: int) -> None:
    """The wait of ``consumer``'s next fetches. aiokafka reads it from its fetcher for every fetch
    request and has no public way to change it."""
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is not None:
        fetcher._fetch_max_wait_ms = wait_ms
