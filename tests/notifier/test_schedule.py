"""Reminders, escalation and quiet hours on real servers with short deadlines: each fires at its
time, a closed review cancels what waits, an escalated user (not a member of the channel) can
answer through the link they got, and quiet hours hold back all but escalations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.notifier.conftest import Notify
from tests.notifier.test_email import APPROVAL, mail_for
from tests.support.stack import Owner, eventually

pytestmark = pytest.mark.slow


async def log_of(person: Owner, message_id: str) -> list[dict[str, Any]]:
    resp = await person.human.get("/api/v1/notifications", params={"message": message_id})
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


@pytest.mark.parametrize(
    ("review", "field"),
    [
        ({"reminders": [0]}, "review.reminders[0]"),
        ({"reminders": ["soon"]}, "review.reminders[0]"),
        ({"expiresInSeconds": 60, "reminders": [30, 60]}, "review.reminders[1]"),
        ({"escalation": [{"afterSeconds": 5, "notify": []}]}, "review.escalation[0].notify"),
        (
            {"escalation": [{"afterSeconds": 5, "notify": ["not-an-e-mail"]}]},
            "review.escalation[0].notify[0]",
        ),
        ({"escalation": [{"afterSeconds": 0, "notify": ["a@b.c"]}]}, "review.escalation[0].afterSeconds"),
        (
            {
                "expiresInSeconds": 60,
                "escalation": [
                    {"afterSeconds": 10, "notify": ["a@b.c"]},
                    {"afterSeconds": 90, "notify": ["a@b.c"]},
                ],
            },
            "review.escalation[1].afterSeconds",
        ),
        ({"reminders": list(range(1, 12))}, "review.reminders"),
    ],
)
async def test_policies_are_validated_naming_the_field(
    notify: Notify, person: Owner, review: dict[str, Any], field: str
) -> None:
    agent = await person.create_agent()
    resp = await person.agent.post(
        "/api/v1/messages", json={"channelId": agent["id"], "text": "x", "review": {**APPROVAL, **review}}
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["field"] == field


async def test_a_reminder_and_an_escalation_fire_and_the_escalated_user_answers(
    notify: Notify, person: Owner
) -> None:
    escalated = await notify.stack.new_owner()
    try:
        agent = await person.create_agent(name="payments")
        msg = await person.post_message(
            agent["id"],
            text="Refund 4,000 EUR?",
            review={
                **APPROVAL,
                "expiresInSeconds": 12,
                "reminders": [8],
                "escalation": [
                    {"afterSeconds": 2, "notify": [escalated.email.upper(), "nobody@nowhere.test"]}
                ],
            },
        )
        stored = (await person.agent.get(f"/api/v1/reviews/{msg['id']}")).json()
        # Stored as given (e-mails lower case) and shown back to the agent.
        assert stored["review"]["reminders"] == [8]
        assert stored["review"]["escalation"] == [
            {"afterSeconds": 2, "notify": sorted([escalated.email.lower(), "nobody@nowhere.test"])}
        ]
        created = datetime.fromisoformat(stored["createdAt"].replace("Z", "+00:00"))
        first = (await mail_for(notify, person.email))[0]
        assert "Review requested" in first.subject
        (escalation,) = await mail_for(notify, escalated.email)
        assert escalation.subject.startswith("[Signoff] Escalated review: Refund 4,000 EUR?")
        reminder = (await mail_for(notify, person.email, 2))[1]
        assert reminder.subject.startswith("[Signoff] Reminder: review waiting")

        entries = await log_of(person, msg["id"])
        by_purpose = {(e["purpose"], e["recipient"]): e for e in entries}
        assert by_purpose[("escalation:0", "nobody@nowhere.test")]["state"] == "skipped"
        assert "no Signoff user" in by_purpose[("escalation:0", "nobody@nowhere.test")]["lastError"]
        sent = {k: e for k, e in by_purpose.items() if e["state"] == "sent"}
        assert set(sent) == {
            ("review", person.email),
            ("reminder:0", person.email),
            ("escalation:0", escalated.email),
        }

        # Each went out at its time (never before it), measured from the message's creation.
        def went(key: tuple[str, str]) -> float:
            at = datetime.fromisoformat(sent[key]["attempts"][0]["at"].replace("Z", "+00:00"))
            return (at - created).total_seconds()

        assert went(("escalation:0", escalated.email)) >= 2
        assert went(("reminder:0", person.email)) >= 12 - 8

        # The escalated user is no member of the channel, yet the link they got answers as them.
        async with httpx.AsyncClient(timeout=10) as browser:
            done = await browser.post(escalation.links()[0])
        assert done.status_code == 200, done.text
        review = (await person.agent.get(f"/api/v1/reviews/{msg['id']}")).json()["review"]
        assert review["respondedBy"] == escalated.user_id
        # Their channel list did not grow: the link answered, it shared nothing.
        assert (await escalated.human.get(f"/api/v1/reviews/{msg['id']}")).status_code == 404
    finally:
        await escalated.agent.aclose()
        await escalated.human.aclose()


async def test_an_answer_cancels_reminders_and_escalations_still_waiting(
    notify: Notify, person: Owner
) -> None:
    agent = await person.create_agent()
    msg = await person.post_message(
        agent["id"],
        text="Later?",
        review={
            **APPROVAL,
            "expiresInSeconds": 600,
            "reminders": [60],
            "escalation": [{"afterSeconds": 300, "notify": [person.email]}],
        },
    )
    await mail_for(notify, person.email)

    async def sent_first() -> list[dict[str, Any]] | None:
        entries = await log_of(person, msg["id"])
        return entries if any(e["purpose"] == "review" and e["state"] == "sent" for e in entries) else None

    waiting = [e for e in await eventually(sent_first, 10, "first notice sent") if e["state"] == "pending"]
    assert {e["purpose"] for e in waiting} == {"reminder:0", "escalation:0"}
    assert (await person.respond(msg["id"], {"selectedOption": "approve"})).status_code == 200

    async def cancelled() -> list[dict[str, Any]] | None:
        entries = [e for e in await log_of(person, msg["id"]) if e["purpose"] != "review"]
        return entries if entries and all(e["state"] == "cancelled" for e in entries) else None

    await eventually(cancelled, 15, "reminder and escalation cancelled")


async def test_quiet_hours_hold_notices_back_but_not_escalations(notify: Notify, person: Owner) -> None:
    now = datetime.now(UTC)
    start, end = now - timedelta(hours=1), now + timedelta(hours=2)
    prefs = await person.human.put(
        "/api/v1/users/me/notifications",
        json={
            "quietHours": {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M"), "timeZone": "UTC"}
        },
    )
    assert prefs.status_code == 200, prefs.text
    assert prefs.json()["quietHours"]["timeZone"] == "UTC"
    bad = await person.human.put(
        "/api/v1/users/me/notifications",
        json={"quietHours": {"start": "22:00", "end": "07:00", "timeZone": "Mars/Olympus"}},
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "quietHours.timeZone"

    agent = await person.create_agent()
    msg = await person.post_message(
        agent["id"],
        text="At night?",
        review={**APPROVAL, "escalation": [{"afterSeconds": 1, "notify": [person.email]}]},
    )
    (escalation,) = await mail_for(notify, person.email)
    assert "Escalated review" in escalation.subject

    async def deferred() -> dict[str, Any] | None:
        entries = await log_of(person, msg["id"])
        return next((e for e in entries if e["purpose"] == "review" and e["deferredUntil"]), None)

    held = await eventually(deferred, 10, "the review notice deferred")
    assert held["state"] == "pending"
    until = datetime.fromisoformat(held["deferredUntil"].replace("Z", "+00:00"))
    assert abs((until - end.replace(second=0, microsecond=0)).total_seconds()) < 1
    assert len(notify.mailbox.to(person.email)) == 1
