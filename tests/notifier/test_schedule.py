"""Reminders, escalation and quiet hours on real servers with short deadlines: each fires at its
time, a closed review cancels what waits, an escalated member answers through the link they got,
an escalation names only the channel's people (an agent key learns nothing of other accounts),
and quiet hours hold escalations back too unless the user lets them through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
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


async def test_a_reminder_and_an_escalation_fire_and_the_escalated_member_answers(
    notify: Notify, person: Owner
) -> None:
    escalated = await notify.stack.new_owner()
    try:
        agent = await person.create_agent(name="payments")
        shared = await person.human.post(
            f"/api/v1/agents/{agent['id']}/members", json={"email": escalated.email}
        )
        assert shared.status_code == 201, shared.text
        msg = await person.post_message(
            agent["id"],
            text="Refund 4,000 EUR?",
            review={
                **APPROVAL,
                "expiresInSeconds": 12,
                "reminders": [8],
                "escalation": [{"afterSeconds": 2, "notify": [escalated.email.upper()]}],
            },
        )
        stored = (await person.agent.get(f"/api/v1/reviews/{msg['id']}")).json()
        # Stored as given (e-mails lower case) and shown back to the agent.
        assert stored["review"]["reminders"] == [8]
        assert stored["review"]["escalation"] == [{"afterSeconds": 2, "notify": [escalated.email.lower()]}]
        created = datetime.fromisoformat(stored["createdAt"].replace("Z", "+00:00"))
        first = (await mail_for(notify, person.email))[0]
        assert "Review requested" in first.subject
        member_mails = await mail_for(notify, escalated.email, 2)
        escalation = next(m for m in member_mails if "Escalated review" in m.subject)
        assert escalation.subject.startswith("[Sayso] Escalated review: Refund 4,000 EUR?")
        reminder = (await mail_for(notify, person.email, 2))[1]
        assert reminder.subject.startswith("[Sayso] Reminder: review waiting")

        expected = {("review", person.email), ("reminder:0", person.email), ("escalation:0", escalated.email)}

        # The notifier records a mail as sent once the SMTP server has answered: a moment after
        # the mail arrived there (a CI run read the log in between).
        async def all_sent() -> dict[tuple[str, str], dict[str, Any]] | None:
            entries = await log_of(person, msg["id"])
            sent = {(e["purpose"], e["recipient"]): e for e in entries if e["state"] == "sent"}
            return sent if expected <= set(sent) else None

        sent = await eventually(all_sent, what="the three mails recorded as sent")

        # Each went out at its time (never before it), measured from the message's creation.
        def went(key: tuple[str, str]) -> float:
            at = datetime.fromisoformat(sent[key]["attempts"][0]["at"].replace("Z", "+00:00"))
            return (at - created).total_seconds()

        assert went(("escalation:0", escalated.email)) >= 2
        assert went(("reminder:0", person.email)) >= 12 - 8

        # The escalation's link answers as the member it was sent to.
        async with httpx.AsyncClient(timeout=10) as browser:
            done = await browser.post(escalation.links()[0])
        assert done.status_code == 200, done.text
        review = (await person.agent.get(f"/api/v1/reviews/{msg['id']}")).json()["review"]
        assert review["respondedBy"] == escalated.user_id

        # The audit log has the escalation step (once, whoever sent it) and the answer it led to.
        async def audited() -> list[dict[str, Any]] | None:
            got = await person.human.get("/api/v1/audit", params={"channelId": agent["id"]})
            entries: list[dict[str, Any]] = got.json()["data"]
            return entries if any(e["kind"] == "answered" for e in entries) else None

        entries = await eventually(audited, what="the escalation and the answer in the audit log")
        assert [(e["kind"], e["messageId"], e["actor"]["id"], e["detail"].get("step")) for e in entries] == [
            ("answered", msg["id"], escalated.user_id, None),
            ("escalated", msg["id"], None, 0),
        ]
        assert entries[1]["detail"]["via"] == "email"
        assert entries[1]["detail"]["recipient"] == escalated.user_id
    finally:
        await escalated.aclose()


async def test_an_agent_key_escalates_only_to_the_channels_people_and_learns_nothing_of_accounts(
    notify: Notify, person: Owner
) -> None:
    """An escalation naming anyone but the channel's owner and members is refused, with the same
    answer for an address with an account (another tenant's user) and one with none; nothing is
    mailed to either, and the agent's notification log holds nothing about them."""
    other = await notify.stack.new_owner()
    try:
        agent = await person.create_agent(name="escalating")
        unknown = f"nobody-{other.user_id}@nowhere.test"
        refusals = []
        for notify_list in (
            [other.email],
            [unknown],
            [person.email, other.email.upper()],
            [person.email, unknown],
        ):
            resp = await person.agent.post(
                "/api/v1/messages",
                json={
                    "channelId": agent["id"],
                    "text": "Escalate to them?",
                    "review": {**APPROVAL, "escalation": [{"afterSeconds": 1, "notify": notify_list}]},
                },
            )
            assert resp.status_code == 422, resp.text
            refusals.append(resp.json()["error"])
        # Known and unknown addresses: told apart by nothing the key can read.
        assert refusals[0] == refusals[1]
        assert refusals[2] == refusals[3]
        assert refusals[0]["field"] == "review.escalation[0].notify[0]"
        assert refusals[2]["field"] == "review.escalation[0].notify[1]"
        assert "owner or a member of this channel" in refusals[0]["message"]

        # The owner's own address is fine: the escalation reaches them, and only them.
        msg = await person.post_message(
            agent["id"],
            text="Escalate to me",
            review={**APPROVAL, "escalation": [{"afterSeconds": 1, "notify": [person.email]}]},
        )
        await mail_for(notify, person.email, 2)
        logged = await person.agent.get("/api/v1/notifications")
        assert logged.status_code == 200
        assert other.email not in logged.text
        assert unknown not in logged.text
        assert {e["recipient"] for e in await log_of(person, msg["id"])} == {person.email}
        assert notify.mailbox.to(other.email) == []
        assert notify.mailbox.to(unknown) == []
    finally:
        await other.aclose()


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


async def test_quiet_hours_hold_escalations_back_unless_the_user_lets_them_through(
    notify: Notify, person: Owner
) -> None:
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
    assert prefs.json()["escalationsDuringQuietHours"] is False
    bad = await person.human.put(
        "/api/v1/users/me/notifications",
        json={"quietHours": {"start": "22:00", "end": "07:00", "timeZone": "Mars/Olympus"}},
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "quietHours.timeZone"

    agent = await person.create_agent()
    review = {**APPROVAL, "escalation": [{"afterSeconds": 1, "notify": [person.email]}]}
    held = await person.post_message(agent["id"], text="At night?", review=review)

    async def deferred(message_id: str, purpose: str) -> dict[str, Any] | None:
        entries = await log_of(person, message_id)
        return next((e for e in entries if e["purpose"] == purpose and e["deferredUntil"]), None)

    # An agent's escalation wakes nobody: it waits for the end of quiet hours like the notice.
    for purpose in ("review", "escalation:0"):
        entry = await eventually(partial(deferred, held["id"], purpose), 10, f"{purpose} deferred")
        assert entry["state"] == "pending"
        until = datetime.fromisoformat(entry["deferredUntil"].replace("Z", "+00:00"))
        assert abs((until - end.replace(second=0, microsecond=0)).total_seconds()) < 1
    assert notify.mailbox.to(person.email) == []

    # The user may let escalations through; the plain notice still waits.
    let_through = await person.human.put(
        "/api/v1/users/me/notifications", json={"escalationsDuringQuietHours": True}
    )
    assert let_through.status_code == 200, let_through.text
    assert let_through.json()["escalationsDuringQuietHours"] is True
    assert let_through.json()["quietHours"] is not None
    urgent = await person.post_message(agent["id"], text="Really urgent", review=review)
    (escalation,) = await mail_for(notify, person.email)
    assert escalation.subject.startswith("[Sayso] Escalated review: Really urgent")
    await eventually(partial(deferred, urgent["id"], "review"), 10, "the urgent review's notice deferred")
    assert len(notify.mailbox.to(person.email)) == 1
