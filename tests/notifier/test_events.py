"""The notifier as a consumer: an event delivered twice tells nobody twice (the unique key on
every notification), and an expired review ends its reminders and updates its Slack message."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from tests.notifier.conftest import Notify
from tests.notifier.test_email import APPROVAL, mail_for
from tests.notifier.test_schedule import log_of
from tests.notifier.test_slack import posted
from tests.support.receiver import Receiver
from tests.support.stack import Owner, eventually

pytestmark = pytest.mark.slow


async def consumed(notify: Notify) -> float:
    """``message.created`` events the running notifiers consumed (their own counter)."""
    total = 0.0
    async with httpx.AsyncClient(timeout=5) as client:
        for name, proc in notify.procs.items():
            if not name.startswith("notifier"):
                continue
            text = (await client.get(f"http://127.0.0.1:{proc.port}/metrics")).text
            for family in text_string_to_metric_families(text):
                if family.name == "sayso_notifier_events":
                    total += sum(
                        s.value
                        for s in family.samples
                        if s.labels.get("type") == "message.created" and s.name.endswith("_total")
                    )
    return total


async def test_a_redelivered_event_tells_nobody_twice(notify: Notify, person: Owner) -> None:
    agent = await person.create_agent(name="twice")
    start = await consumed(notify)
    first = await person.post_message(agent["id"], text="Once only?", review=APPROVAL)
    await mail_for(notify, person.email)
    before = await log_of(person, first["id"])
    async with notify.stack.mongo() as client:
        event = await notify.db(client)["events"].find_one(
            {"type": "message.created", "data.message.id": first["id"]}
        )
    assert event is not None
    record: dict[str, Any] = {k: v for k, v in event.items() if k not in ("_id", "expire_at")}
    record["id"] = event["_id"]
    producer = AIOKafkaProducer(bootstrap_servers=notify.stack.kafka_bootstrap)
    await producer.start()
    try:
        topic = f"{notify.env['SAYSO_TOPIC_PREFIX']}message.created"
        value = json.dumps(record, default=lambda d: d.isoformat()).encode()
        await producer.send_and_wait(topic, value, key=agent["id"].encode())
    finally:
        await producer.stop()
    # A later message on the same channel (same partition, so consumed after the copy): once its
    # mail is in, the copy has been handled.
    await person.post_message(agent["id"], text="Second", review=APPROVAL)
    mails = await mail_for(notify, person.email, 2)
    assert [m.subject.split(": ", 1)[1] for m in mails] == ["Once only?", "Second"]
    assert len(await log_of(person, first["id"])) == len(before)
    # The copy was read and handled (not skipped as unreadable): three events, two mails.
    assert await consumed(notify) - start == 3


async def test_an_expired_review_cancels_reminders_and_updates_slack(
    notify: Notify, person: Owner, slack: Receiver
) -> None:
    await person.human.put(
        "/api/v1/users/me/notifications", json={"email": False, "slackWebhookUrl": slack.url("/slack/expiry")}
    )
    agent = await person.create_agent(name="expiring")
    msg = await person.post_message(
        agent["id"], text="Nobody will answer", review={**APPROVAL, "expiresInSeconds": 3, "reminders": [1]}
    )
    first, *_ = await posted(slack, "/slack/expiry")
    assert any(b["type"] == "actions" for b in first.json()["blocks"])

    async def closed_follow_up() -> Any:
        found = [
            r.json() for r in slack.at("/slack/expiry") if "Expired without an answer" in r.body.decode()
        ]
        return found[0] if found else None

    follow_up = await eventually(closed_follow_up, 20, "the expiry follow-up in Slack")
    assert not any(b["type"] == "actions" for b in follow_up["blocks"])
    review = (await person.agent.get(f"/api/v1/reviews/{msg['id']}")).json()["review"]
    assert review["status"] == "expired"
    states = {e["purpose"]: e["state"] for e in await log_of(person, msg["id"])}
    assert states["outcome"] == "sent"
    assert states["reminder:0"] in ("sent", "cancelled")
    assert "pending" not in states.values()
