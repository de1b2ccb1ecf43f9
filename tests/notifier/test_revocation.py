"""Removing a member revokes on real servers: the notices still waiting for them are cancelled
(no reminder or escalation reaches them), and the e-mail links and Slack buttons they were sent
answer nothing, on a quorum review too, even once they are added back."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.notifier.conftest import Notify
from tests.notifier.test_email import APPROVAL, mail_for
from tests.notifier.test_schedule import log_of
from tests.notifier.test_slack import buttons, click, posted, signed
from tests.support.receiver import Receiver
from tests.support.stack import Owner, eventually

pytestmark = pytest.mark.slow


async def share(owner: Owner, agent_id: str, member: Owner) -> None:
    added = await owner.human.post(f"/api/v1/agents/{agent_id}/members", json={"email": member.email})
    assert added.status_code == 201, added.text


async def unshare(owner: Owner, agent_id: str, member: Owner) -> None:
    removed = await owner.human.delete(f"/api/v1/agents/{agent_id}/members/{member.user_id}")
    assert removed.status_code == 200, removed.text


async def test_a_removed_member_gets_no_reminder_and_their_links_neither_answer_nor_vote(
    notify: Notify, person: Owner
) -> None:
    member = await notify.stack.new_owner()
    try:
        agent = await person.create_agent(name="shared-quorum")
        await share(person, agent["id"], member)
        # One approval decides: before the fix, the removed member's link alone approved it.
        msg = await person.post_message(
            agent["id"],
            text="Wire 90,000 EUR?",
            review={
                **APPROVAL,
                "quorum": {"approvals": 1},
                "expiresInSeconds": 30,
                "reminders": [20],
                "escalation": [{"afterSeconds": 12, "notify": [person.email, member.email]}],
            },
        )
        (notice,) = await mail_for(notify, member.email)
        approve = notice.links()[0]
        await unshare(person, agent["id"], member)

        # What waited for them is cancelled at once, naming why; the owner's schedule stands.
        async def cancelled() -> list[dict[str, Any]] | None:
            theirs = [e for e in await log_of(person, msg["id"]) if e["recipient"] == member.email]
            waiting = [e for e in theirs if e["purpose"] != "review"]
            done = {e["purpose"] for e in waiting if e["state"] == "cancelled"}
            return waiting if done == {"reminder:0", "escalation:0"} else None

        for entry in await eventually(
            cancelled, 10, "the removed member's reminder and escalation cancelled"
        ):
            assert entry["lastError"] == "the recipient is no longer a reviewer of this channel"

        async with httpx.AsyncClient(timeout=10) as browser:
            page = await browser.get(approve)
            assert page.status_code == 403
            assert "Link no longer valid" in page.text
            assert "Wire 90,000" not in page.text  # the page shows a removed member nothing of the review
            done = await browser.post(approve)
            assert done.status_code == 403, done.text
            assert "no longer a reviewer of this channel" in done.text
        review = (await person.agent.get(f"/api/v1/reviews/{msg['id']}")).json()["review"]
        assert (review["status"], review["votes"]) == ("pending", [])

        # The owner's reminder and escalation arrive (both were due after the member's); the
        # member got nothing after their first notice.
        mails = await mail_for(notify, person.email, 3)
        subjects = sorted(m.subject.split(":")[0] for m in mails)
        assert subjects == ["[Sayso] Escalated review", "[Sayso] Reminder", "[Sayso] Review requested"]
        assert len(notify.mailbox.to(member.email)) == 1

        # Added back, they are a reviewer again, but the links of before stay withdrawn.
        await share(person, agent["id"], member)
        async with httpx.AsyncClient(timeout=10) as browser:
            again = await browser.post(approve)
        assert again.status_code == 403, again.text
        review = (await person.agent.get(f"/api/v1/reviews/{msg['id']}")).json()["review"]
        assert (review["status"], review["votes"]) == ("pending", [])
    finally:
        await member.aclose()


async def test_a_removed_members_slack_button_answers_nothing_and_shows_no_outcome(
    notify: Notify, person: Owner, slack: Receiver
) -> None:
    member = await notify.stack.new_owner()
    try:
        prefs = await member.human.put(
            "/api/v1/users/me/notifications", json={"email": False, "slackWebhookUrl": slack.url("/slack/m")}
        )
        assert prefs.status_code == 200, prefs.text
        agent = await person.create_agent(name="shared-slack")
        await share(person, agent["id"], member)
        msg = await person.post_message(agent["id"], text="Drop the staging DB?", review=APPROVAL)
        (first,) = await posted(slack, "/slack/m")
        await unshare(person, agent["id"], member)
        payload = {
            "type": "block_actions",
            "actions": [{"action_id": "sayso_answer_0", "value": buttons(first.json())[0]["value"]}],
            "response_url": slack.url("/slack/m/response"),
        }
        resp = await click(notify, *signed(payload))
        assert resp.status_code == 200, resp.text  # Slack wants its 200; the click did nothing
        review = (await person.agent.get(f"/api/v1/reviews/{msg['id']}")).json()["review"]
        assert review["status"] == "pending"
        # The owner answers; the outcome update of the removed member's Slack message is
        # cancelled, not sent: they hear nothing of who decided what.
        assert (await person.respond(msg["id"], {"selectedOption": "reject"})).status_code == 200

        async def outcome() -> dict[str, Any] | None:
            entries = await log_of(person, msg["id"])
            found = [e for e in entries if e["purpose"] == "outcome" and e["state"] != "pending"]
            return found[0] if found else None

        update = await eventually(outcome, 15, "the outcome update settled")
        assert (update["state"], update["lastError"]) == (
            "cancelled",
            "the recipient is no longer a reviewer of this channel",
        ), json.dumps(update)
        assert slack.at("/slack/m/response") == []
        assert len(slack.at("/slack/m")) == 1
    finally:
        await member.aclose()
