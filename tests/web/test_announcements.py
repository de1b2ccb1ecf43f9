"""What a screen reader hears (issue #35, item 4): opening the inbox says nothing, a new review
says one short line, an answer says "Approved" or "Rejected: …", through one live region; the
message lists and the operator page's clock are not live; answer buttons and form hints are tied
to what they belong to."""

from __future__ import annotations

import asyncio
import re

import pytest
from playwright.async_api import Route, expect

from tests.support.stack import Owner
from tests.web.conftest import Tab, sign_in

pytestmark = pytest.mark.slow

LONG = " ".join(["Every word of this long review would be read aloud by the old polite log."] * 20)
NEW = "Deploy **v2.4** to production now, with the new database migration and the cache warmup?"

# Live regions by role or attribute: anything a screen reader would read as it changes.
LIVE = "[aria-live]:not([aria-live=off]), [role=log], [role=status], [role=alert]:not([hidden]), [role=marquee], [role=timer]"


async def test_one_short_announcement_per_new_review_and_per_answer(tab: Tab, user: Owner) -> None:
    agent = await user.create_agent(name="news-bot")
    old = await user.post_message(agent["id"], text=LONG, review={"type": "approval"})
    page = tab.page
    await sign_in(page, user)
    said = page.locator("#announcer p")
    await expect(page.locator(f"#msg-{old['id']}")).to_be_visible()

    # Opening the inbox announces nothing, and nothing in the page's content is live.
    assert await page.locator("#announcer").get_attribute("aria-live") == "polite"
    await expect(said).to_have_count(0)
    await expect(page.locator("#main").locator(LIVE)).to_have_count(0)

    new = await user.post_message(agent["id"], text=NEW, review={"type": "approval"})
    await expect(said).to_have_text(
        ["New review from news-bot: Deploy v2.4 to production now, with the new database migration and the…"]
    )
    card = page.locator(f"#msg-{new['id']}")
    await card.get_by_role("button", name="Add feedback").click()
    await card.get_by_label("Feedback for the agent").fill("not today, the freeze is on")
    await card.get_by_role("button", name="Reject").click()
    await expect(said.last).to_have_text("Rejected: not today, the freeze is on")
    await page.locator(f"#msg-{old['id']}").get_by_role("button", name="Approve").click()
    await expect(said.last).to_have_text("Approved")
    await expect(said).to_have_count(3)
    # The answers did not make the list live either (the old log re-read each re-inserted card).
    await expect(page.locator("#main").locator(LIVE)).to_have_count(0)


async def test_buttons_and_hints_say_what_they_belong_to(tab: Tab, user: Owner) -> None:
    agent = await user.create_agent(name="tie-bot")
    ship = await user.post_message(agent["id"], text="Ship **v2** today?", review={"type": "approval"})
    hold = await user.post_message(agent["id"], text="Hold the release train?", review={"type": "approval"})
    form = await user.post_message(
        agent["id"],
        text="Budget for the launch?",
        review={
            "type": "form",
            "payload": {
                "fields": [
                    {"name": "budget", "label": "Budget", "type": "number", "min": 0, "max": 500},
                    {
                        "name": "owner",
                        "label": "Owner",
                        "type": "text",
                        "description": "Who signs the invoice",
                    },
                ]
            },
        },
    )
    page = tab.page
    await sign_in(page, user)
    for message, about in ((ship, "Ship v2 today? — tie-bot"), (hold, "Hold the release train? — tie-bot")):
        card = page.locator(f"#msg-{message['id']}")
        for name in ("Approve", "Reject", "Add feedback"):
            await expect(card.get_by_role("button", name=name)).to_have_accessible_description(about)
    card = page.locator(f"#msg-{form['id']}")
    await expect(card.get_by_role("spinbutton", name="Budget")).to_have_accessible_description(
        "between 0 and 500"
    )
    await expect(card.get_by_role("textbox", name="Owner")).to_have_accessible_description(
        "Who signs the invoice"
    )
    await expect(card.get_by_role("button", name="Submit")).to_have_accessible_description(
        "Budget for the launch? — tie-bot"
    )
    # An error the API names is read with its field, first; before that the field says no "⚠".
    budget = card.get_by_role("spinbutton", name="Budget")
    await budget.fill("900")
    await card.get_by_role("button", name="Submit").click()
    await expect(budget).to_have_attribute("aria-invalid", "true")
    await expect(budget).to_have_accessible_description(
        re.compile(r"^\W*must be at most 500 between 0 and 500$")
    )

    # The agent's settings and the notification settings: hints are read with their fields.
    await page.goto(f"/#/c/{agent['id']}/settings")
    await expect(
        page.get_by_label("Retry schedule (seconds before each retry)")
    ).to_have_accessible_description("Comma separated; empty for the default.")
    await page.goto("/#/notifications")
    await expect(page.get_by_label("Time zone")).to_have_accessible_description(
        "IANA name, e.g. Europe/Berlin"
    )


async def test_the_operator_page_clock_is_not_live(tab: Tab, user: Owner) -> None:
    page = tab.page
    await sign_in(page, user, "#/ops")
    updated = page.locator("#main p", has_text=re.compile(r"^Updated "))
    await expect(updated).to_contain_text("Updated")
    assert await updated.evaluate(f"el => el.closest({LIVE!r}) === null")
    await expect(page.locator("#main").locator(LIVE)).to_have_count(0)


async def test_a_burst_of_reviews_is_announced_once_each_at_most(tab: Tab, user: Owner) -> None:
    """Reviews that arrive together may share one line ("5 new reviews, from …"); none is left
    out and none said twice."""
    agent = await user.create_agent(name="burst-bot")
    page = tab.page
    await sign_in(page, user)
    await expect(page.get_by_role("heading", name="Inbox", level=1)).to_be_visible()
    await asyncio.gather(
        *(user.post_message(agent["id"], text=f"Job {n}?", review={"type": "approval"}) for n in range(5))
    )
    await expect(page.locator("#main article.msg")).to_have_count(5)

    def counted(lines: list[str]) -> int:
        total = 0
        for line in lines:
            one = re.fullmatch(r"New review from burst-bot: Job \d\?", line)
            many = re.fullmatch(r"(\d+) new reviews, from burst-bot", line)
            assert one or many, line
            total += 1 if one else int(many.group(1)) if many else 0
        return total

    said = page.locator("#announcer p")
    await said.first.wait_for(state="attached")
    lines = await said.all_text_contents()
    while counted(lines) < 5:
        await said.nth(len(lines)).wait_for(state="attached")
        lines = await said.all_text_contents()
    assert counted(lines) == 5
    assert len(lines) <= 5


async def test_a_message_sent_while_the_stream_connects_is_said_once(tab: Tab, user: Owner) -> None:
    """A message sent after the channel loaded but before the live stream opened comes with the
    resync the stream's opening starts, not as an event: it is news all the same (it was once
    added silently, as part of the page)."""
    agent = await user.create_agent(name="early-bot")
    page = tab.page
    release = asyncio.Event()

    async def hold(route: Route) -> None:
        await release.wait()
        await route.continue_()

    await page.route(lambda url: "/api/v1/events?" in url, hold)
    await page.goto(f"/#/c/{agent['id']}")
    await page.get_by_label("E-mail").fill(user.email)
    await page.get_by_label("Password").fill(user.password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_text("No messages yet.")).to_be_visible()
    await expect(page.locator("#connection")).not_to_have_attribute("data-state", "live")
    sent = await user.post_message(agent["id"], text="Sent while the stream was connecting.")
    release.set()
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    await expect(page.locator(f"#msg-{sent['id']}")).to_be_visible()
    said = page.locator("#announcer p")
    await expect(said).to_have_text(["early-bot: Sent while the stream was connecting."])
    # Once: the next message's line follows it, with nothing said twice in between.
    await user.post_message(agent["id"], text="And one sent live.")
    await expect(said).to_have_text(
        ["early-bot: Sent while the stream was connecting.", "early-bot: And one sent live."]
    )


async def test_an_open_channel_says_the_agents_new_messages(tab: Tab, user: Owner) -> None:
    agent = await user.create_agent(name="chat-bot")
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}")
    # Loaded: a message already there when the channel opens is part of the page, not news.
    await expect(page.get_by_text("No messages yet.")).to_be_visible()
    said = page.locator("#announcer p")
    await user.post_message(agent["id"], text="Build **finished** in 3 minutes, all green.")
    await expect(said).to_have_text(["chat-bot: Build finished in 3 minutes, all green."])
    # The user's own message is not said back to them.
    composer = page.get_by_role("textbox", name="Message", exact=True)
    await composer.fill("thanks")
    await composer.press("Enter")
    await expect(page.locator("article.mine")).to_have_count(1)
    await user.post_message(agent["id"], text="You are welcome.")
    await expect(said).to_have_text(
        ["chat-bot: Build finished in 3 minutes, all green.", "chat-bot: You are welcome."]
    )
    # A streamed message is said once, whole, when it completes.
    stream = {"channelId": agent["id"], "streamId": "turn-1"}
    created = await user.agent.post("/api/v1/messages", json={**stream, "text": "Looking"})
    assert created.status_code == 201, created.text
    article = page.locator(f"#msg-{created.json()['id']}")
    await expect(article).to_have_attribute("data-stream-state", "streaming")
    patched = await user.agent.patch(
        "/api/v1/messages/streams/turn-1", json={"channelId": agent["id"], "text": "Looking at the logs"}
    )
    assert patched.status_code == 200, patched.text
    await expect(article.locator(".md")).to_have_text("Looking at the logs")
    done = await user.agent.patch(
        "/api/v1/messages/streams/turn-1",
        json={
            "channelId": agent["id"],
            "text": "Looking at the logs: **3 errors**, all retried.",
            "complete": True,
        },
    )
    assert done.status_code == 200, done.text
    await expect(article).to_have_attribute("data-stream-state", "complete")
    await expect(said).to_have_count(3)
    await expect(said.last).to_have_text("chat-bot: Looking at the logs: 3 errors, all retried.")
