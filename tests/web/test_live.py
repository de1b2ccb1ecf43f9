"""Live updates: an agent's message appears without a reload, an answer in one tab shows in the
other, and a tab that lost its connection catches up on what it missed."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import BrowserContext, expect

from tests.support.stack import Owner
from tests.web.conftest import Tab, open_tab, sign_in

pytestmark = pytest.mark.slow


async def test_agent_message_appears_live_and_answers_reach_other_tabs(
    context: BrowserContext, tab: Tab, user: Owner
) -> None:
    agent = await user.create_agent(name="deploy-bot")
    first = tab.page
    await sign_in(first, user, f"#/c/{agent['id']}")
    # The second tab shares the session (localStorage) and has its own stream.
    other = await open_tab(context)
    await other.page.goto(f"/#/c/{agent['id']}")
    await expect(other.page.locator("#connection")).to_have_attribute("data-state", "live")

    msg = await user.post_message(
        agent["id"], text="Deploy **v2.1** to production?", review={"type": "approval", "payload": {}}
    )
    for page in (first, other.page):
        card = page.locator(f"#msg-{msg['id']}")
        await expect(card.locator(".md strong")).to_have_text("v2.1")
        await expect(card.get_by_role("button", name="Approve")).to_be_enabled()
    # The sidebar counts it as pending.
    link = first.locator(f'.channel-link[data-channel-id="{agent["id"]}"] .pending-count')
    await expect(link).to_have_text("1")

    await first.locator(f"#msg-{msg['id']}").get_by_role("button", name="Approve").click()
    await expect(first.locator(f"#msg-{msg['id']} .review")).to_have_attribute(
        "data-review-status", "completed"
    )
    # The other tab did nothing: the review:responded event updated it.
    await expect(other.page.locator(f"#msg-{msg['id']} .review")).to_have_attribute(
        "data-review-status", "completed"
    )
    await expect(other.page.locator(f"#msg-{msg['id']} .answer")).to_contain_text("Approve")
    await expect(link).to_be_hidden()
    await other.page.close()
    assert not other.errors


async def test_resumes_after_a_disconnect_without_losing_events(
    context: BrowserContext, tab: Tab, user: Owner
) -> None:
    agent = await user.create_agent(name="night-bot")
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}")
    seen = await user.post_message(agent["id"], text="before the outage")
    await expect(page.locator(f"#msg-{seen['id']}")).to_be_visible()
    # The page may have shown it from its first load: wait until the stream itself delivered an
    # event, so there is an id to resume from.
    await expect(page.locator("#connection")).to_have_attribute("data-last-event-id", re.compile(r"^evt_"))
    streams: list[str] = []
    page.on(
        "request", lambda r: streams.append(r.url) if r.url.split("?")[0].endswith("/api/v1/events") else None
    )

    await context.set_offline(True)
    await expect(page.locator("#connection")).not_to_have_attribute("data-state", "live")
    missed = [await user.post_message(agent["id"], text=f"while offline {i}") for i in range(3)]
    await context.set_offline(False)
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    for m in missed:
        await expect(page.locator(f"#msg-{m['id']}")).to_contain_text(m["text"])
    # In order, newest last, and nothing twice.
    order = await page.locator(".messages article").evaluate_all("els => els.map(e => e.dataset.messageId)")
    assert order == [seen["id"], *(m["id"] for m in missed)]
    # They came from the stream's replay: the reconnect (a new EventSource with a new ticket: a
    # ticket opens one connection) asked to resume after the last event.
    assert streams, "the page did not reconnect"
    query = parse_qs(urlsplit(streams[-1]).query)
    assert query["lastEventId"][0].startswith("evt_"), streams[-1]
    assert query["ticket"][0].startswith("tk_"), streams[-1]


async def test_a_deleted_channels_review_leaves_the_open_inbox(tab: Tab, user: Owner) -> None:
    # Issue #35 item 7: the inbox never shows a review whose channel is gone, also when it is
    # open while the channel is deleted (the review:expired event with channel_deleted).
    gone = await user.create_agent(name="short-lived-bot")
    stays = await user.create_agent(name="staying-bot")
    doomed = await user.post_message(
        gone["id"], text="Rotate keys?", review={"type": "approval", "payload": {}}
    )
    kept = await user.post_message(stays["id"], text="Ship it?", review={"type": "approval", "payload": {}})
    page = tab.page
    await sign_in(page, user, "#/inbox")
    await expect(page.locator(f"#msg-{doomed['id']}")).to_be_visible()
    deleted = await user.agent.delete(f"/api/v1/agents/{gone['id']}")
    assert deleted.status_code == 200, deleted.text
    await expect(page.locator(f"#msg-{doomed['id']}")).to_have_count(0)
    await expect(page.locator(f"#msg-{kept['id']}")).to_be_visible()
