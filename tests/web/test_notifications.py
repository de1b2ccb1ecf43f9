"""Notification preferences in the browser: your e-mail, Slack webhook (write-only, its host shown)
and quiet hours on the Notifications page and on an agent's settings page, a channel's own Slack
webhook, and the notification log on the Notifications and Operator pages."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.notifier.test_email import APPROVAL
from tests.support.stack import Owner, RunningStack, eventually
from tests.web.conftest import Tab, sign_in

pytestmark = pytest.mark.slow


async def test_preferences_channel_slack_and_the_notification_log(
    stack: RunningStack, tab: Tab, user: Owner
) -> None:
    page = tab.page
    await sign_in(page, user, "#/notifications")
    await expect(page.get_by_role("heading", name="Notifications", exact=True)).to_be_visible()
    prefs = page.locator('[data-section="preferences"]')
    await expect(prefs.get_by_text(f"({user.email})")).to_be_visible()
    await expect(prefs.get_by_label("E-mail me")).to_be_checked()
    await expect(prefs.get_by_text("No Slack webhook set.")).to_be_visible()
    incidents = prefs.get_by_label("Webhook incidents by e-mail")
    await expect(incidents).to_be_checked()

    await prefs.get_by_label("E-mail me").uncheck()
    await incidents.uncheck()
    await prefs.get_by_label("Slack incoming-webhook URL").fill(
        "https://hooks.slack.test/services/T0/B0/secretpart"
    )
    await prefs.get_by_label("Hold notices back").check()
    await prefs.get_by_label("From").fill("21:30")
    await prefs.get_by_label("Until").fill("06:45")
    await prefs.get_by_label("Time zone").fill("Europe/Berlin")
    await prefs.get_by_role("button", name="Save notifications").click()
    await expect(prefs.get_by_text("Saved.")).to_be_visible()
    await expect(prefs.get_by_text("A webhook on hooks.slack.test is set.")).to_be_visible()
    # Write-only: the URL is never put back into the page.
    assert "secretpart" not in await page.content()
    saved = (await user.human.get("/api/v1/users/me/notifications")).json()
    assert saved["email"] is False
    assert saved["operatorEmails"] is False
    assert saved["slackWebhookHost"] == "hooks.slack.test"
    assert saved["quietHours"] == {"start": "21:30", "end": "06:45", "timeZone": "Europe/Berlin"}

    # A zone that does not exist is refused, naming the field; nothing changes.
    await prefs.get_by_label("Time zone").fill("Mars/Olympus")
    await prefs.get_by_role("button", name="Save notifications").click()
    await expect(prefs.locator(".result-error")).to_contain_text("quietHours.timeZone")
    assert (await user.human.get("/api/v1/users/me/notifications")).json()["quietHours"][
        "timeZone"
    ] == "Europe/Berlin"

    # The channel's own Slack webhook, on the agent's settings page.
    agent = await user.create_agent(name="notify-bot")
    await page.goto(f"/#/c/{agent['id']}/settings")
    channel = page.locator('[data-section="channel-slack"]')
    await expect(channel.get_by_text("No Slack webhook set.")).to_be_visible()
    await channel.get_by_label("Slack incoming-webhook URL").fill(
        "https://hooks.slack.test/services/T1/B1/other"
    )
    await channel.get_by_role("button", name="Save Slack webhook").click()
    await expect(channel.get_by_text("A webhook on hooks.slack.test is set.")).to_be_visible()
    assert (await user.agent.get(f"/api/v1/agents/{agent['id']}/notifications")).json()[
        "slackWebhookSet"
    ] is True
    await channel.get_by_role("button", name="Remove").click()
    await expect(channel.get_by_text("No Slack webhook set.")).to_be_visible()

    # A review is logged (the session stack has no SMTP server: e-mail is recorded as not
    # configured) and shows on the Operator page and the Notifications page.
    await user.human.put("/api/v1/users/me/notifications", json={"email": True, "quietHours": None})
    msg = await user.post_message(agent["id"], text="Logged?", review=APPROVAL)

    async def logged() -> bool:
        data = (await user.human.get("/api/v1/notifications", params={"message": msg["id"]})).json()["data"]
        return any(n["kind"] == "email" for n in data)

    await eventually(logged, 15, "the notification logged")
    await page.goto("/#/ops")
    log = page.locator('[data-section="notification-log"]')
    skipped = log.locator("tr[data-state='skipped']").first
    await expect(skipped).to_contain_text("not configured")
    # ...and that it stays so once e-mail is set up: the owner answers in the inbox instead.
    await expect(skipped).to_contain_text("it is not sent later, answer the review in the inbox")
    await expect(log).to_contain_text(user.email)
    await page.get_by_role("link", name="Notifications").click()
    await expect(page.locator('[data-section="notification-log"] tr[data-state]').first).to_be_visible()
