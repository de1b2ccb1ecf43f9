"""One tenant's outsized event must not stop every tenant's events (issue #25, finding 1), and a
reviewed message's text stays what the human approved (finding 4).

Against the whole stack (API with its outbox relay, the broker, realtime's SSE stream): tenant A
does what wedged the relay before, tenant B's live stream must still hear B's own message."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import subprocess
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import prometheus_client
import pytest
import yaml
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from sayso_common.clock import utcnow
from sayso_common.events import (
    MAX_EVENT_BYTES,
    EventTooLargeError,
    MessageCreated,
    MessageData,
    ReviewResponded,
    event_to_document,
    outbox_entry,
)
from sayso_common.ids import min_id
from sayso_common.lease import Lease
from sayso_common.mongo import DEAD_LETTERS, MESSAGES, Database, Doc, ensure_indexes
from sayso_common.outbox import OutboxRelay
from sayso_common.views import AttachmentView, MessageView, ReviewView
from sayso_expirer import backlog
from tests.conftest import Infra
from tests.realtime.clients import Inbox, sse_stream
from tests.support.stack import Owner, RunningStack, eventually
from tests.test_observability import promtool

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


@pytest.fixture
async def a(stack: RunningStack) -> AsyncIterator[Owner]:
    async with await stack.new_owner() as created:
        yield created


@pytest.fixture
async def b(stack: RunningStack) -> AsyncIterator[Owner]:
    async with await stack.new_owner() as created:
        yield created


async def _heard(inbox: Inbox, message_id: str) -> None:
    await inbox.wait_for(
        lambda item: item.payload.get("id") == message_id,
        timeout=30,
        what=f"the live stream delivered {message_id}",
    )


def live(stack: RunningStack, owner: Owner) -> contextlib.AbstractAsyncContextManager[Inbox]:
    """The owner's SSE stream through the edge, read in the background."""
    return sse_stream(stack.url, {"x-api-key": owner.api_key})


async def test_attached_texts_too_large_for_one_event_do_not_stop_other_tenants(
    stack: RunningStack, a: Owner, b: Owner
) -> None:
    assert a.user_id != b.user_id
    channel_a = (await a.create_agent())["id"]
    channel_b = (await b.create_agent())["id"]
    # 20 texts of 64 KiB: the message's event carried all of them, 1.3 MB, more than Kafka takes.
    files = []
    for i in range(20):
        stored = await a.agent.post(
            "/api/v1/files/store-text",
            json={
                "channelId": channel_a,
                "content": "x" * 65_536,
                "filename": f"part-{i}.txt",
                "mimeType": "text/plain",
            },
        )
        assert stored.status_code == 201, stored.text
        files.append(stored.json()["id"])
    async with live(stack, b) as stream:
        big = await a.post_message(channel_a, text="twenty files", attachmentIds=files)
        mine = await b.post_message(channel_b, text="still flowing")
        await _heard(stream, mine["id"])
    # The message and its texts are all there to read; the event did without the texts.
    read = await a.agent.get(f"/api/v1/messages/{big['id']}")
    assert [len(f["textContent"]) for f in read.json()["attachments"]] == [65_536] * 20
    async with stack.mongo() as client:
        events = client[stack.mongo_db]["events"]
        stored_event = await eventually(
            lambda: events.find_one({"data.message.id": big["id"]}), what="A's event"
        )
    assert all(f.get("textContent") is None for f in stored_event["data"]["message"]["attachments"])
    assert len(json.dumps(stored_event, default=str)) < 100_000


async def test_an_unpublishable_entry_is_moved_aside_and_the_rest_flow(
    stack: RunningStack, a: Owner, b: Owner
) -> None:
    """An entry no broker takes, already in the outbox (written by a version without the bounds:
    the reported database stayed wedged across restarts), goes to the dead letters."""
    channel_a = (await a.create_agent())["id"]
    channel_b = (await b.create_agent())["id"]
    victim = await a.post_message(channel_a, text="small")
    huge = MessageCreated(
        channel_id=channel_a,
        owner_id=a.user_id,
        data=MessageData(
            message=MessageView(
                id=victim["id"], channel_id=channel_a, text="y" * 1_300_000, created_at=utcnow()
            )
        ),
    )
    async with stack.mongo() as client, live(stack, b) as stream:
        db = client[stack.mongo_db]
        await db[MESSAGES].update_one({"_id": victim["id"]}, {"$push": {"outbox": event_to_document(huge)}})
        mine = await b.post_message(channel_b, text="after the huge one")
        await _heard(stream, mine["id"])
        dead = await eventually(lambda: db[DEAD_LETTERS].find_one({"_id": huge.id}), what="the dead letter")
        assert dead["reason"] == "too_large"
        assert dead["channel_id"] == channel_a
        assert dead["type"] == "message.created"
        assert dead["size"] > MAX_EVENT_BYTES
        assert dead["entry"]["id"] == huge.id

        # The relay stores the dead letter first, then pulls the entry (a crash in between only
        # repeats the move): a CI run read the outbox in between.
        async def emptied() -> bool:
            left = await db[MESSAGES].find_one({"_id": victim["id"]}, {"outbox": 1})
            return left is not None and left.get("outbox") == []

        await eventually(emptied, what="the entry pulled from the message's outbox")
    async with stack.client() as edge:
        health = (await edge.get("/healthz")).json()
        assert health["status"] == "ok"
        assert health["outbox"]["deadLetters"] >= 1
        assert set(health["outbox"]) == {"documents", "oldestAgeSeconds", "deadLetters"}
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as api:
        metrics = (await api.get("/metrics")).text
    assert 'sayso_outbox_dead_letters_total{reason="too_large"}' in metrics


async def _small_request_relay(infra: Infra, db: Database) -> OutboxRelay:
    """The relay against the real broker, its producer refusing requests over 20 KB, started."""
    relay = OutboxRelay(
        db,
        lambda: AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, max_request_size=20_000),
        [MESSAGES],
        topic_prefix=f"t{secrets.token_hex(3)}.",
        lease=Lease(db, "relay", "me", 30),
    )
    await relay.producer.start()
    relay.producer_started = True
    return relay


async def test_a_record_the_producer_refuses_is_moved_aside(infra: Infra) -> None:
    """The producer's own refusal (a broker with a smaller limit than ours) also never holds the
    events behind it: the relay against the real broker, with a 20 KB request limit."""
    client: AsyncMongoClient[Doc] = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    db = client[f"relay_{secrets.token_hex(4)}"]
    await ensure_indexes(db)
    events = [
        MessageCreated(
            channel_id="ch_x",
            owner_id="o",
            data=MessageData(
                message=MessageView(id=f"msg_{i}", channel_id="ch_x", text=text, created_at=utcnow())
            ),
        )
        for i, text in enumerate(["before", "z" * 40_000, "after"])
    ]
    await db[MESSAGES].insert_one({"_id": "doc", "outbox": [event_to_document(e) for e in events]})
    relay = await _small_request_relay(infra, db)
    try:
        assert await relay.drain() == 2
        dead = await db[DEAD_LETTERS].find_one({"_id": events[1].id})
        assert dead is not None
        assert dead["reason"] == "too_large"
        assert "producer" in dead["detail"]
        assert (await db[MESSAGES].find_one({"_id": "doc"}) or {}).get("outbox") == []
        stored = await db["events"].distinct("_id")
        assert sorted(stored) == sorted([events[0].id, events[2].id])
    finally:
        await relay.close()
        await client.drop_database(db.name)
        await client.close()


async def test_a_decision_whose_event_is_moved_aside_is_audited_all_the_same(infra: Infra) -> None:
    """The review's state changed even though its event never reached the broker: the audit log
    still records the decision (found in the review read: dead-lettered decisions had none)."""
    client: AsyncMongoClient[Doc] = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    db = client[f"relay_{secrets.token_hex(4)}"]
    await ensure_indexes(db)
    view = MessageView(
        id="msg_big",
        channel_id="ch_x",
        text="z" * 40_000,
        created_at=utcnow(),
        review=ReviewView(
            type="approval", status="completed", response={"selectedOption": "approve"}, responded_by="usr_1"
        ),
    )
    answered = ReviewResponded(channel_id="ch_x", owner_id="o", data=MessageData(message=view))
    await db[MESSAGES].insert_one({"_id": "msg_big", "outbox": [event_to_document(answered)]})
    relay = await _small_request_relay(infra, db)
    try:
        assert await relay.drain() == 0
        assert await db[DEAD_LETTERS].find_one({"_id": answered.id}) is not None
        entries = await db["audit"].find({"message_id": "msg_big"}).to_list()
        assert [(e["_id"], e["kind"], e["decision"]) for e in entries] == [
            (answered.id, "answered", "approve")
        ]
    finally:
        await relay.close()
        await client.drop_database(db.name)
        await client.close()


def test_a_write_whose_event_would_be_too_large_is_refused_naming_the_largest_part() -> None:
    view = MessageView(
        id="msg_1",
        channel_id="ch",
        text="short",
        metadata={"blob": "m" * (MAX_EVENT_BYTES + 1)},
        created_at=utcnow(),
    )
    event = MessageCreated(channel_id="ch", owner_id="o", data=MessageData(message=view))
    with pytest.raises(EventTooLargeError) as refused:
        outbox_entry(event)
    assert refused.value.code.status == 413
    assert refused.value.field == "metadata"
    # Attachment texts never ride in events, whatever their size.
    with_text = view.model_copy(
        update={
            "metadata": None,
            "attachments": [
                AttachmentView(
                    id="f",
                    channel_id="ch",
                    filename="a.txt",
                    mime_type="text/plain",
                    size=9,
                    text_content="t" * 900_000,
                    created_at=utcnow(),
                )
            ],
        }
    )
    entry = outbox_entry(MessageCreated(channel_id="ch", owner_id="o", data=MessageData(message=with_text)))
    assert entry["data"]["message"]["attachments"][0]["textContent"] is None


async def test_status_steps_are_bounded_in_bytes(a: Owner) -> None:
    channel = (await a.create_agent())["id"]
    stream_id = f"s-{secrets.token_hex(4)}"
    await a.post_message(channel, text="working", streamId=stream_id)
    step = "😀" * 1000  # 4,000 bytes
    answers = []
    for _ in range(12):
        answers.append(
            await a.agent.post(
                f"/api/v1/messages/streams/{stream_id}/status", json={"channelId": channel, "text": step}
            )
        )
    codes = [r.status_code for r in answers]
    assert codes[:8] == [201] * 8, codes  # 32,000 bytes fit in 32 KiB
    refused = answers[8]
    assert refused.status_code == 413, refused.text
    assert refused.json()["error"]["code"] == "status_events_too_large"
    assert refused.json()["error"]["field"] == "text"
    # A short step still fits, and the stream completes.
    ok = await a.agent.post(
        f"/api/v1/messages/streams/{stream_id}/status", json={"channelId": channel, "text": "done"}
    )
    assert ok.status_code == 201, ok.text


async def test_a_reviewed_messages_text_cannot_change_after_it_is_sent(a: Owner) -> None:
    channel = (await a.create_agent())["id"]
    stream_id = f"s-{secrets.token_hex(4)}"
    created = await a.post_message(
        channel,
        text="Deploy v2.1 to STAGING?",
        streamId=stream_id,
        review={"type": "approval", "payload": {}},
    )
    digest = created["review"]["contentDigest"]
    canonical = json.dumps(
        {
            "attachments": [],
            "metadata": None,
            "payload": created["review"]["payload"],
            "text": "Deploy v2.1 to STAGING?",
            "type": "approval",
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert digest == hashlib.sha256(canonical.encode()).hexdigest()
    answered = await a.respond(created["id"], {"selectedOption": "approve"})
    assert answered.status_code == 200, answered.text
    rewrite = await a.agent.patch(
        f"/api/v1/messages/streams/{stream_id}",
        json={"channelId": channel, "text": "Drop the PRODUCTION database?", "complete": True},
    )
    assert rewrite.status_code == 409, rewrite.text
    assert rewrite.json()["error"] == {
        "code": "review_text_fixed",
        "message": rewrite.json()["error"]["message"],
        "field": "text",
    }
    # Closing the stream with the same text is fine.
    close = await a.agent.patch(
        f"/api/v1/messages/streams/{stream_id}",
        json={"channelId": channel, "text": "Deploy v2.1 to STAGING?", "complete": True},
    )
    assert close.status_code == 200, close.text
    read = (await a.agent.get(f"/api/v1/messages/{created['id']}")).json()
    assert read["text"] == "Deploy v2.1 to STAGING?"
    assert read["review"]["status"] == "completed"
    assert read["review"]["contentDigest"] == digest


async def test_a_stuck_outbox_read_from_mongodb_fires_the_alert(infra: Infra, tmp_path: Path) -> None:
    """The expirer's backlog gauge, computed from a real outbox entry nobody published for two
    minutes, trips SaysoOutboxStuck in promtool with the real alert rules."""
    client: AsyncMongoClient[Doc] = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    db = client[f"stuck_{secrets.token_hex(4)}"]
    await ensure_indexes(db)
    two_minutes_ago = utcnow() - timedelta(minutes=2)
    event = MessageCreated(
        # The event id carries its time, as an unpublished event's would.
        id=min_id("evt", int(two_minutes_ago.timestamp() * 1000)),
        channel_id="ch",
        owner_id="o",
        occurred_at=two_minutes_ago,
        data=MessageData(message=MessageView(id="m", channel_id="ch", created_at=two_minutes_ago)),
    )
    try:
        await db[MESSAGES].insert_one({"_id": "m", "outbox": [event_to_document(event)]})
        ages = []
        for _ in range(3):
            await backlog.refresh_outbox(db, utcnow())
            ages.append(registry_value("sayso_outbox_backlog_oldest_age_seconds"))
            await asyncio.sleep(1)
        assert 119 < ages[0] < 600, ages
        assert ages == sorted(ages), ages
    finally:
        await client.drop_database(db.name)
        await client.close()
    # What was read, scraped every 15 s for another minute, against the real rules.
    rule = next(
        r
        for g in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
        for r in g["rules"]
        if r["alert"] == "SaysoOutboxStuck"
    )
    start = int(ages[0])
    at_eval = start + 60
    described = rule["annotations"]["description"].replace(
        "{{ $value | humanizeDuration }}", f"{at_eval // 60}m {at_eval % 60}s"
    )
    (tmp_path / "alerts.yml").write_text((PROMETHEUS / "alerts.yml").read_text())
    case = {
        "interval": "15s",
        "input_series": [
            {
                "series": 'sayso_outbox_backlog_oldest_age_seconds{service="expirer"}',
                "values": f"{start}+15x8",
            }
        ],
        "alert_rule_test": [
            {
                "eval_time": "1m",
                "alertname": "SaysoOutboxStuck",
                "exp_alerts": [
                    {
                        "exp_labels": {"severity": "critical"},
                        "exp_annotations": {
                            "summary": rule["annotations"]["summary"],
                            "description": described,
                        },
                    }
                ],
            }
        ],
    }
    (tmp_path / "t.yml").write_text(
        yaml.safe_dump({"rule_files": ["alerts.yml"], "evaluation_interval": "15s", "tests": [case]})
    )
    checked = await asyncio.to_thread(
        subprocess.run,
        [promtool(), "test", "rules", "t.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def registry_value(name: str) -> float:
    value = prometheus_client.REGISTRY.get_sample_value(name)
    assert value is not None, name
    return value
