"""Endpoints whose destination is a Kafka topic (issue #31, 4a), on the real stack: the stack's
broker read by a plain aiokafka consumer, a second Tansu started and stopped for another cluster
that is down, then up."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from standardwebhooks import Webhook

import sayso
from sayso_common.mongo import ENDPOINTS
from sayso_devstack.processes import Proc, free_port, start_tansu
from tests.conftest import Infra
from tests.dispatcher.flows import answered, deliveries
from tests.support.stack import Owner, RunningStack, eventually


@pytest.fixture(scope="module")
async def owner(stack: RunningStack) -> AsyncIterator[Owner]:
    async with stack.new_owners(1) as [person]:
        yield person


def new_topic() -> str:
    return f"endpoints.{secrets.token_hex(4)}"


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1)])
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def reading(bootstrap: str, topic: str) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def records(
    consumer: AIOKafkaConsumer, count: int, timeout: float = 30.0
) -> list[ConsumerRecord[Any, Any]]:
    got: list[ConsumerRecord[Any, Any]] = []
    async with asyncio.timeout(timeout):
        while len(got) < count:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                got.extend(batch)
    return got


def headers_of(record: ConsumerRecord[Any, Any]) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}


async def endpoint_delivery(
    owner: Owner, message_id: str, state: str, timeout: float = 30.0
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        found = [d for d in await deliveries(owner, message_id) if d["endpointId"]]
        return found[0] if len(found) == 1 and found[0]["state"] == state else None

    return await eventually(check, timeout, f"the endpoint's delivery of {message_id} {state}")


async def add_endpoint(owner: Owner, channel: str, **body: Any) -> dict[str, Any]:
    resp = await owner.agent.post(f"/api/v1/agents/{channel}/endpoints", json=body)
    assert resp.status_code == 201, resp.text
    made: dict[str, Any] = resp.json()
    return made


async def test_a_topic_on_this_cluster_gets_the_signed_body_and_the_webhook_headers(
    stack: RunningStack, owner: Owner
) -> None:
    topic = new_topic()
    await create_topic(stack.kafka_bootstrap, topic)
    agent = await owner.create_agent()
    endpoint = await add_endpoint(
        owner, agent["id"], destination={"type": "kafka", "topic": topic}, headers={"X-Team": "ops"}
    )
    assert endpoint["url"] == f"kafka:///{topic}"
    messages = [await answered(owner, agent["id"]) for _ in range(3)]
    async with reading(stack.kafka_bootstrap, topic) as consumer:
        got = await records(consumer, 3)
    done = [await endpoint_delivery(owner, m["id"], "delivered") for m in messages]
    assert {r.key for r in got} == {agent["id"].encode()}
    assert len({r.partition for r in got}) == 1  # keyed by channel: one partition, in order
    # One record per delivery (the order among them is the order they were sent, which
    # concurrent sends of one endpoint do not fix).
    assert sorted(headers_of(r)["webhook-id"] for r in got) == sorted(d["eventId"] for d in done)
    for record in got:
        headers = headers_of(record)
        assert headers["content-type"] == "application/json"
        assert headers["x-team"] == "ops"  # the endpoint's own header; names in lower case
        # Both verifiers accept it with the endpoint's secret: the same signed body an HTTP
        # endpoint gets.
        body = Webhook(endpoint["secret"]).verify(record.value, headers)
        assert sayso.verify_webhook(record.value, headers, endpoint["secret"]) == body
        assert body["event"] == "review:responded"
        assert body["channelId"] == agent["id"]
    for delivery in done:
        [attempt] = delivery["attempts"]
        assert attempt["statusCode"] is None
        assert attempt["errorKind"] is None
        assert delivery["url"] == f"kafka:///{topic}"


@pytest.fixture
def second_port() -> int:
    return free_port()


@pytest.fixture
def other_cluster(infra: Infra, second_port: int) -> Iterator[list[Proc]]:
    """A second Tansu the test starts (on ``second_port``) when it wants it up; stopped after."""
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.stop()


async def test_a_cluster_that_is_down_is_retried_until_it_comes_up(
    infra: Infra, owner: Owner, second_port: int, other_cluster: list[Proc]
) -> None:
    bootstrap = f"127.0.0.1:{second_port}"
    topic = new_topic()
    agent = await owner.create_agent(webhookRetrySchedule=[1] * 20)
    endpoint = await add_endpoint(
        owner, agent["id"], destination={"type": "kafka", "topic": topic, "bootstrapServers": [bootstrap]}
    )
    msg = await answered(owner, agent["id"])

    async def failed_once() -> dict[str, Any] | None:
        found = [d for d in await deliveries(owner, msg["id"]) if d["endpointId"]]
        return found[0] if found and found[0]["attemptCount"] >= 1 else None

    first = await eventually(failed_once, 30.0, "a first attempt at a cluster that is down")
    assert first["state"] == "pending"
    assert first["attempts"][0]["errorKind"] == "connect_error"

    other_cluster.append(start_tansu(infra.log_dir, port=second_port, name="tansu-endpoint"))
    await create_topic(bootstrap, topic)
    async with reading(bootstrap, topic) as consumer:
        [record] = await records(consumer, 1, timeout=60.0)
    delivered = await endpoint_delivery(owner, msg["id"], "delivered", timeout=30.0)
    assert delivered["attemptCount"] >= 2
    assert delivered["attempts"][-1]["errorKind"] is None
    # The same webhook-id as every attempt before it: receivers dedupe on it.
    assert headers_of(record)["webhook-id"] == delivered["eventId"] == first["eventId"]
    Webhook(endpoint["secret"]).verify(record.value, headers_of(record))


async def test_a_cluster_that_stays_down_fails_after_the_schedule(owner: Owner, second_port: int) -> None:
    agent = await owner.create_agent(webhookRetrySchedule=[1])
    await add_endpoint(
        owner,
        agent["id"],
        destination={"type": "kafka", "topic": "never", "bootstrapServers": [f"127.0.0.1:{second_port}"]},
    )
    msg = await answered(owner, agent["id"])
    failed = await endpoint_delivery(owner, msg["id"], "failed")
    assert [a["errorKind"] for a in failed["attempts"]] == ["connect_error", "connect_error"]
    assert failed["status"] == "webhook_failed"


@pytest.mark.parametrize(
    ("topic", "servers", "named"),
    [
        # A cluster the allow-list no longer names.
        ("t", ["kafka.example.com:9092"], ["SAYSO_DISPATCHER_KAFKA_ALLOWED_HOSTS", "kafka.example.com"]),
        # One of this cluster's own event topics: no tenant writes into the stack's events.
        ("review.responded", None, ["own topics"]),
        # Without the prefix (SAYSO_DISPATCHER_KAFKA_TOPIC_PREFIX, "endpoints." here).
        ("orders", None, ["SAYSO_DISPATCHER_KAFKA_TOPIC_PREFIX"]),
    ],
)
async def test_a_destination_the_settings_refuse_is_refused_at_send(
    stack: RunningStack, owner: Owner, topic: str, servers: list[str] | None, named: list[str]
) -> None:
    agent = await owner.create_agent()
    # Stored as if the settings had narrowed since it was saved (the API would refuse it now).
    client = stack.mongo()
    try:
        await client[stack.mongo_db][ENDPOINTS].insert_one(
            {
                "_id": f"ep_{secrets.token_hex(8)}",
                "owner_id": owner.user_id,
                "channel_id": agent["id"],
                "url": f"kafka://{','.join(servers or [])}/{topic}",
                "kafka": {"topic": topic, "bootstrap": servers, "security_protocol": "PLAINTEXT"},
                "disabled": False,
                "signing_secrets": [],
                "created_at": datetime.now(UTC),
            }
        )
    finally:
        await client.close()
    msg = await answered(owner, agent["id"])
    failed = await endpoint_delivery(owner, msg["id"], "failed")
    [attempt] = failed["attempts"]
    assert attempt["errorKind"] == "ssrf_refused"
    for words in named:
        assert words in attempt["error"], attempt["error"]


async def test_sasl_credentials_reach_neither_logs_nor_attempts(
    infra: Infra, owner: Owner, second_port: int
) -> None:
    password = f"kafka-pw-{secrets.token_hex(8)}"
    agent = await owner.create_agent(webhookRetrySchedule=[])
    security = {
        "protocol": "SASL_PLAINTEXT",
        "saslMechanism": "PLAIN",
        "username": "svc",
        "password": password,
    }
    destination = {"type": "kafka", "topic": "t", "bootstrapServers": [f"127.0.0.1:{second_port}"]}
    await add_endpoint(owner, agent["id"], destination={**destination, "security": security})
    msg = await answered(owner, agent["id"])
    failed = await endpoint_delivery(owner, msg["id"], "failed")
    assert failed["attempts"][0]["errorKind"] == "connect_error"
    shown = await owner.agent.get(f"/api/v1/messages/{msg['id']}/deliveries")
    assert password not in shown.text
    for path in sorted(p for p in infra.log_dir.rglob("*") if p.is_file()):
        assert password.encode() not in path.read_bytes(), path
