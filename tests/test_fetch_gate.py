"""The fetch gate (issue #36): a Kafka consumer that has read everything stops fetching, and a
wake-up or the periodic recheck makes it read what was published since, against the real Tansu
broker and mongod. The stack's consumers run it: their ``sayso_kafka_fetch_paused`` gauge."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient
from sayso_service.faststream_internals import hold_polls

from sayso_common import fetch_gate
from sayso_common.fetch_gate import FetchGate, wake_on_published
from sayso_common.mongo import Doc
from tests.conftest import Infra
from tests.support.stack import Owner, RunningStack, eventually

WAIT_MS = 10
T = TypeVar("T")


async def _until(predicate: object, what: str, seconds: float = 30.0) -> None:
    assert callable(predicate)
    for _ in range(int(seconds / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting until {what}")


async def _bounded(step: Awaitable[T], what: str, seconds: float = 30.0) -> T:
    """Every broker call here ends: a hang fails naming the step instead of at pytest's timeout."""
    try:
        return await asyncio.wait_for(step, seconds)
    except TimeoutError:
        raise AssertionError(f"{what} took over {seconds} s") from None


class Reader:
    """A consumer on a topic of its own, read in a loop as the services read theirs."""

    def __init__(self, infra: Infra, topic: str) -> None:
        self.topic = topic
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=infra.kafka_bootstrap, enable_auto_commit=False, fetch_max_wait_ms=WAIT_MS
        )
        self.producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap)
        self.got: list[bytes] = []

    async def read(self) -> None:
        while True:
            for records in (await self.consumer.getmany(timeout_ms=1000)).values():
                self.got += [r.value for r in records if r.value is not None]

    def polled(self) -> list[int | None]:
        return [self.consumer.last_poll_timestamp(tp) for tp in sorted(self.consumer.assignment())]

    async def publish(self, value: bytes) -> tuple[str, int, int]:
        """Where the broker stored it, as the relay's stored event names it."""
        meta = await _bounded(self.producer.send_and_wait(self.topic, value), "a publish")
        return meta.topic, meta.partition, meta.offset


@contextlib.asynccontextmanager
async def reader(infra: Infra, recheck: float = 3600.0) -> AsyncIterator[tuple[Reader, FetchGate]]:
    topic = f"gate-{secrets.token_hex(4)}"
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await _bounded(admin.start(), "the admin client starting")
    try:
        await _bounded(admin.create_topics([NewTopic(topic, 2, 1)]), "creating the topic")
    finally:
        await _bounded(admin.close(), "the admin client closing")
    r = Reader(infra, topic)
    await _bounded(r.producer.start(), "the producer starting")
    await _bounded(r.consumer.start(), "the consumer starting")
    # The new topic may take a moment to be listed. topics() asks the broker afresh each time, but
    # does not update the client's own metadata (partitions_for_topic read that: when the consumer
    # started before the topic was listed, it learned of it only at its next refresh, 5 minutes
    # on: a clean-clone CI run hung here until pytest's timeout). assign() makes it fetch them.
    for _ in range(300):
        if topic in await r.consumer.topics():
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"the broker never listed topic {topic}")
    partitions = [TopicPartition(topic, p) for p in range(2)]
    r.consumer.assign(partitions)
    # The topic is new, so its end is offset 0: no offset lookup, which needs the partitions'
    # leaders in the consumer's own metadata (a clean-clone CI run hung 300 s in a test here).
    for tp in partitions:
        r.consumer.seek(tp, 0)
    gate = FetchGate(lambda: [r.consumer], fetch_wait_ms=WAIT_MS, recheck_seconds=recheck)
    tasks = [asyncio.create_task(r.read()), asyncio.create_task(gate.run())]
    try:
        yield r, gate
    finally:
        for task in tasks:
            task.cancel()
        await _bounded(asyncio.gather(*tasks, return_exceptions=True), "the reader's tasks ending")
        await _bounded(r.consumer.stop(), "the consumer stopping")
        await _bounded(r.producer.stop(), "the producer stopping")


async def test_an_idle_consumer_stops_fetching_and_a_wake_up_reads_what_was_published(infra: Infra) -> None:
    async with reader(infra) as (r, gate):
        await _until(lambda: gate.paused, "the gate pauses the idle consumer")
        assert r.consumer.paused() == r.consumer.assignment()
        await asyncio.sleep(0.1)  # a fetch sent before the pause is still answered
        before = r.polled()
        await asyncio.sleep(0.5)  # fifty fetches' worth at a 10 ms wait
        assert r.polled() == before, "a paused consumer fetched"

        # Published without a wake-up: a paused consumer does not read it...
        await r.publish(b"one")
        await asyncio.sleep(0.3)
        assert r.got == []
        # ... and a wake-up reads it, then the consumer is paused again.
        gate.wake()
        await _until(lambda: r.got == [b"one"], "the woken consumer reads the record")
        await _until(lambda: gate.paused, "the gate pauses again once everything was read")

        for n in range(20):
            await r.publish(f"burst-{n}".encode())
            gate.wake()
        await _until(lambda: len(r.got) == 21, "every record of a burst arrives")
        assert sorted(r.got[1:]) == sorted(f"burst-{n}".encode() for n in range(20))


async def test_the_recheck_reads_what_no_wake_up_announced(infra: Infra) -> None:
    async with reader(infra, recheck=0.5) as (r, gate):
        await _until(lambda: gate.paused, "the gate pauses the idle consumer")
        await r.publish(b"unannounced")
        await _until(lambda: r.got == [b"unannounced"], "the recheck reads the record")


async def test_a_fetch_answered_before_the_publish_but_handled_after_the_wake_up_does_not_pause(
    infra: Infra,
) -> None:
    """On a busy process a fetch the broker answered (empty) before a publish may be handled after
    the wake-up for it; by its time it looks fresh, and its high watermark is old. Here every fetch
    answer is handled 50 ms late, and each record, published and announced with its position as
    the relay's stored event does, must arrive long before the (hour-long) recheck. Judged by the
    last fetch's time and high watermark alone, the gate paused with the record unread."""
    async with reader(infra) as (r, gate):
        client: Any = getattr(r.consumer, "_client")  # noqa: B009
        send = client.send

        async def handled_late(node_id: int, request: Any, **kwargs: Any) -> Any:
            answer = await send(node_id, request, **kwargs)
            if type(request).__name__.startswith("FetchRequest"):
                await asyncio.sleep(0.05)
            return answer

        client.send = handled_late

        async def busy() -> None:  # other events keep the gate awake and the fetches flowing
            while True:
                gate.wake()
                await asyncio.sleep(0.01)

        for n in range(5):
            waker = asyncio.create_task(busy())
            await asyncio.sleep(0.2)
            waker.cancel()
            at = await r.publish(f"late-{n}".encode())
            gate.wake([at])
            await _until(lambda n=n: len(r.got) == n + 1, f"record {n} is read", seconds=5)


async def test_a_stored_event_wakes_the_gate_with_its_position(infra: Infra) -> None:
    """The relay stores each event in ``events`` once the broker took it, with where the broker
    put it: that insert wakes, naming the position (an older document without one, plainly)."""
    client: AsyncMongoClient[Doc] = AsyncMongoClient(infra.mongo_url)
    db = client[f"gate_{secrets.token_hex(4)}"]
    wakes: list[list[tuple[str, int, int]]] = []
    task = asyncio.create_task(wake_on_published(db, lambda at: wakes.append(list(at))))
    try:
        await _until(lambda: len(wakes) == 1, "the change stream opens (and wakes once)")
        await db.events.insert_one({"_id": "e1", "published": {"topic": "t", "partition": 1, "offset": 41}})
        await _until(lambda: len(wakes) == 2, "the stored event wakes")
        await db.events.update_one({"_id": "e1"}, {"$set": {"x": 1}})
        await db.events.insert_many([{"_id": "e2"}, {"_id": "e3", "published": {"topic": "t"}}])
        await _until(lambda: len(wakes) == 4, "each stored event wakes")
        assert wakes == [[], [("t", 1, 41)], [], []], "an update woke the gate, or a position was misread"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.drop_database(db.name)
        await client.close()


async def test_an_event_queued_in_an_outbox_keeps_the_consumer_fetching_until_it_is_published(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that queues an event resumes the consumers before the relay publishes it, and the
    gate does not pause in between: the record is read without the store's wake-up (the recheck
    is an hour), then the gate pauses once the expectation lapses."""
    async with reader(infra) as (r, gate):
        await _until(lambda: gate.paused, "the gate pauses the idle consumer")
        gate.expect()
        await _until(lambda: not gate.paused, "an expected event resumes the consumer")
        await asyncio.sleep(0.3)  # many times what a caught-up gate takes to pause
        assert not gate.paused, "the gate paused before the expected event was published"
        await r.publish(b"expected")
        await _until(lambda: r.got == [b"expected"], "the record is read without a wake-up", seconds=5)
        await _until(lambda: gate.paused, "the gate pauses once the expectation lapsed")
        # The relay's store ends the expectation: with one that would last an hour, the gate
        # pauses once the stored event is read.
        monkeypatch.setattr(fetch_gate, "EXPECT_SECONDS", 3600.0)
        gate.expect()
        await _until(lambda: not gate.paused, "resumed")
        gate.wake([await r.publish(b"stored")])
        await _until(lambda: r.got == [b"expected", b"stored"], "the stored event is read", seconds=5)
        await _until(lambda: gate.paused, "paused after the store's wake-up")


async def test_an_outbox_write_expects_and_a_stored_event_wakes(infra: Infra) -> None:
    """One change stream: writes that queue an event in an outbox (the relay's own filter) call
    ``expect``, the relay's store calls ``wake``; a pull that empties an outbox calls neither."""
    client: AsyncMongoClient[Doc] = AsyncMongoClient(infra.mongo_url)
    db = client[f"gate_{secrets.token_hex(4)}"]
    seen: list[str] = []
    task = asyncio.create_task(
        wake_on_published(db, lambda at: seen.append(f"wake{list(at)}"), lambda: seen.append("expect"))
    )
    try:
        await _until(lambda: seen == ["wake[]"], "the change stream opens (and wakes once)")
        await db.messages.insert_one({"_id": "m", "outbox": [{"id": "e1"}]})
        await _until(lambda: len(seen) == 2, "the queued event is expected")
        await db.messages.update_one({"_id": "m"}, {"$pull": {"outbox": {"id": "e1"}}})
        await db.messages.update_one({"_id": "m"}, {"$set": {"text": "edited"}})
        await db.events.insert_one({"_id": "e1", "published": {"topic": "t", "partition": 0, "offset": 7}})
        await _until(lambda: len(seen) == 3, "the stored event wakes")
        await db.deliveries.update_one({"_id": "d"}, {"$push": {"outbox": {"id": "e2"}}}, upsert=True)
        await _until(lambda: len(seen) == 4, "an event queued on a delivery is expected")
        assert seen == ["wake[]", "expect", "wake[('t', 0, 7)]", "expect"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.drop_database(db.name)
        await client.close()


async def test_a_held_poll_waits_for_records_instead_of_answering_empty(infra: Infra) -> None:
    """FastStream polls for 50 ms and then sleeps 50 ms: held, a poll waits for the record."""
    async with reader(infra) as (r, gate):
        gate.open()
        await _until(lambda: r.consumer.paused() == set(), "the consumer reads")
        probe = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap, fetch_max_wait_ms=WAIT_MS)
        await probe.start()
        try:
            probe.assign(sorted(r.consumer.assignment()))
            await probe.seek_to_end()
            hold_polls(probe, 5000)
            poll = asyncio.create_task(probe.getmany(timeout_ms=50))
            await asyncio.sleep(0.3)  # six of FastStream's polls
            await r.publish(b"late")
            batches = await poll
            assert [rec.value for records in batches.values() for rec in records] == [b"late"]
        finally:
            await probe.stop()


@pytest.mark.parametrize("service", ["dispatcher", "notifier", "realtime"])
async def test_the_stack_s_consumers_pause_when_idle(stack: RunningStack, service: str) -> None:
    port = stack.procs[service].port

    def paused() -> bool:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        return "sayso_kafka_fetch_paused 1.0" in text

    await _until(paused, f"{service}'s consumers are paused", seconds=60)


async def test_the_relay_stores_where_the_broker_put_each_event(stack: RunningStack, owner: Owner) -> None:
    """The position a stored event names (what a woken consumer reads past) is the record's own:
    a plain consumer reading the broker there finds that event."""
    agent = await owner.create_agent()
    msg = await owner.post_message(agent["id"], text="where is it")
    async with stack.mongo() as mongo:

        async def stored() -> dict[str, Any] | None:
            found: dict[str, Any] | None = await mongo[stack.mongo_db].events.find_one(
                {"type": "message.created", "data.message.id": msg["id"]}
            )
            return found

        document = await eventually(stored, what="the message's event in the events collection")
    at = document["published"]
    probe = AIOKafkaConsumer(bootstrap_servers=stack.kafka_bootstrap, enable_auto_commit=False)
    await probe.start()
    try:
        tp = TopicPartition(at["topic"], at["partition"])
        probe.assign([tp])
        probe.seek(tp, at["offset"])
        record = await asyncio.wait_for(probe.getone(), 30)
        assert json.loads(record.value or b"{}")["id"] == document["_id"]
    finally:
        await probe.stop()
