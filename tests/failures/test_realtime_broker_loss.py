"""Fault: the broker comes back empty under a running realtime feed (the local broker is
memory-only). The Kafka client reconnects by itself, and the new broker answers fetches past a
partition's end with nothing rather than an error, so a feed that kept its old positions skipped
every event until the partitions grew past them: in the chaos soak each live client missed about
a third of its events after the restart. The feed must read the new broker from its start, and
hand on what the old broker had acknowledged but the feed had not read yet, from the events the
relay stored in MongoDB."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from sayso_common.clock import utcnow
from sayso_common.events import AgentStatusChanged, AgentStatusData, Event, event_to_json
from sayso_common.kafka import ensure_topics
from sayso_common.topics import topic_for
from sayso_devstack.processes import start_tansu
from sayso_realtime.feed import EventFeed
from sayso_realtime.settings import RealtimeSettings

pytestmark = pytest.mark.slow


def _status_event(channel: str) -> AgentStatusChanged:
    return AgentStatusChanged(
        channel_id=channel,
        owner_id="usr_feed",
        data=AgentStatusData(agent_id=channel, status="active", last_activity_at=utcnow()),
    )


async def _publish(bootstrap: str, count: int, tag: str) -> list[str]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    ids = []
    try:
        for i in range(count):
            channel = f"agt_{tag}{i % 4}"  # several keys, so every partition gets some
            event = _status_event(channel)
            await producer.send_and_wait(topic_for(event.type), event_to_json(event), key=channel.encode())
            ids.append(event.id)
    finally:
        await producer.stop()
    return ids


async def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)


async def test_the_feed_reads_a_broker_that_came_back_empty_from_its_start(tmp_path: Path) -> None:
    kafka = start_tansu(tmp_path, name="tansu-feed")
    bootstrap = f"127.0.0.1:{kafka.port}"
    settings = RealtimeSettings(
        kafka_bootstrap=bootstrap,
        secret_key="feed-test-" + "x" * 32,
        topic_partitions=2,
        instance="feed-test",
    )
    seen: list[str] = []
    # Stands in for the events collection: one event the old broker took and dropped unread.
    dropped = _status_event("agt_dropped")
    anchors: list[str] = []

    async def publish(event: Event) -> None:
        seen.append(event.id)

    async def stored_after(last_id: str) -> list[Event]:
        anchors.append(last_id)
        return [dropped]

    await ensure_topics(settings)
    feed = EventFeed(settings, publish, stored_after)
    task = asyncio.create_task(feed.run())
    try:
        await asyncio.wait_for(feed.ready.wait(), 30)
        # Well past what the new broker will hold, on every partition of the topic.
        before = await _publish(bootstrap, 40, "a")
        await _until(lambda: set(before) <= set(seen), 20, "the events before the restart")
        last_read = seen[-1]
        kafka.kill()
        kafka = start_tansu(tmp_path, port=kafka.port, name="tansu-feed-2")
        await ensure_topics(settings)
        after = await _publish(bootstrap, 8, "b")
        # Not all 8: Tansu can drop writes it acknowledged while it is still creating the topics
        # (the relay checks its writes for that; a bare producer does not). Without the rewind the
        # feed waits at its old positions, beyond anything the new broker will hold soon.
        await _until(lambda: bool(set(after) & set(seen)), 30, "an event written after the restart")
        assert dropped.id in seen
        assert anchors == [last_read]  # asked once, from the last event read before the loss
        assert len(seen) == len(set(seen))  # each once
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        kafka.stop()
