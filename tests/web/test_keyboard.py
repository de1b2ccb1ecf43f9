"""The inbox by keyboard (issue #35, items 3 and 5): where the focus goes after an answer, after
choosing a channel and on "Load older"; Escape closes what it opened; Enter does not send a
prefilled answer; and the shortcuts (j/k, a/r, digits, f, e, o, g i, ?), counted in key presses
for ten approvals."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.support.stack import Owner
from tests.web.conftest import Tab, sign_in

pytestmark = pytest.mark.slow

APPROVAL: dict[str, Any] = {"type": "approval", "payload": {}}


async def stored(owner: Owner, message_id: str) -> dict[str, Any]:
    resp = await owner.agent.get(f"/api/v1/reviews/{message_id}")
    assert resp.status_code == 200, resp.text
    review: dict[str, Any] = resp.json()["review"]
    return review


class Keys:
    """The keyboard, counting what it presses."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.count = 0

    async def press(self, key: str) -> None:
        self.count += 1
        await self.page.keyboard.press(key)


async def test_after_an_answer_the_focus_goes_to_the_next_card(tab: Tab, user: Owner) -> None:
    agent = await user.create_agent(name="queue-bot")
    ids = [(await user.post_message(agent["id"], text=f"Step {n}?", review=APPROVAL))["id"] for n in range(3)]
    page = tab.page
    await sign_in(page, user)
    cards = [page.locator(f"#msg-{i}") for i in ids]
    await expect(cards[2]).to_be_visible()

    # The middle card first: the focus goes on to the one after it.
    await cards[1].get_by_role("button", name="Approve").focus()
    await page.keyboard.press("Enter")
    await expect(cards[1].locator(".review")).to_have_attribute("data-review-status", "completed")
    await expect(cards[2]).to_be_focused()
    # The last card: nothing waits after it, so back to the one before.
    await cards[2].get_by_role("button", name="Reject").click()
    await expect(cards[2].locator(".review")).to_have_attribute("data-review-status", "completed")
    await expect(cards[0]).to_be_focused()
    # Nothing waits at all: the focus stays on the answered card, which shows the answer.
    await cards[0].get_by_role("button", name="Approve").click()
    await expect(cards[0].locator(".review")).to_have_attribute("data-review-status", "completed")
    await expect(cards[0]).to_be_focused()


async def test_choosing_a_channel_focuses_its_heading(tab: Tab, user: Owner) -> None:
    await user.create_agent(name="alpha-bot")
    beta = await user.create_agent(name="beta-bot")
    page = tab.page
    await sign_in(page, user)
    link = page.get_by_role("navigation", name="Channels").get_by_role("link", name="beta-bot")
    await link.focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="beta-bot", level=1)).to_be_focused()
    assert page.url.endswith(f"#/c/{beta['id']}")


async def test_load_older_keeps_the_focus(tab: Tab, user: Owner) -> None:
    """While it loads the button stays focused; when the last page hides it, the focus goes to
    the newest message that page brought, not to <body>."""
    agent = await user.create_agent(name="history-bot")
    ids = [(await user.post_message(agent["id"], text=f"Line {n}"))["id"] for n in range(105)]
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}")
    await expect(page.locator(f"#msg-{ids[-1]}")).to_be_visible()
    older = page.get_by_role("button", name="Load older messages")
    await older.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator(f"#msg-{ids[5]}")).to_be_attached()  # messages 5..54 came in
    await expect(older).to_be_focused()
    await page.keyboard.press("Enter")  # the last page: 0..4
    await expect(page.locator(f"#msg-{ids[0]}")).to_be_attached()
    await expect(older).to_be_hidden()
    await expect(page.locator(f"#msg-{ids[4]}")).to_be_focused()


async def test_load_more_in_the_inbox_keeps_the_focus(tab: Tab, user: Owner) -> None:
    """The inbox's last page hides "Load more": the focus goes to the first card it brought."""
    agent = await user.create_agent(name="backlog-bot")
    ids = [(await user.post_message(agent["id"], text=f"Old {n}?", review=APPROVAL))["id"] for n in range(51)]
    page = tab.page
    await sign_in(page, user)
    await expect(page.locator("#main article.msg")).to_have_count(50)
    more = page.get_by_role("button", name="Load more")
    await more.focus()
    await page.keyboard.press("Enter")
    await expect(more).to_be_hidden()
    await expect(page.locator(f"#msg-{ids[0]}")).to_be_focused()


async def test_escape_closes_what_it_opened(tab: Tab, user: Owner) -> None:
    agent = await user.create_agent(name="esc-bot")
    msg = await user.post_message(agent["id"], text="Merge the branch?", review=APPROVAL)
    page = tab.page
    await sign_in(page, user)
    card = page.locator(f"#msg-{msg['id']}")

    # The feedback box.
    toggle = card.get_by_role("button", name="Add feedback")
    await toggle.focus()
    await page.keyboard.press("Enter")
    box = card.get_by_label("Feedback for the agent")
    await expect(box).to_be_focused()
    await page.keyboard.type("later")
    await page.keyboard.press("Escape")
    await expect(box).to_be_hidden()
    await expect(toggle).to_be_focused()
    await expect(toggle).to_have_attribute("aria-expanded", "false")

    # The shortcuts help, from "?" and from its visible button.
    await page.keyboard.press("?")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("row", name="j Next card")).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(toggle).to_be_focused()
    help_button = page.get_by_role("button", name="Keyboard shortcuts")
    await help_button.click()
    await expect(dialog).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(help_button).to_be_focused()

    # The deliveries panel of an answered card.
    await card.get_by_role("button", name="Approve").click()
    deliveries = card.get_by_role("button", name="Deliveries")
    await expect(deliveries).to_have_accessible_description("Merge the branch? — esc-bot")
    await deliveries.click()
    panel = card.get_by_role("region", name="Webhook deliveries")
    await expect(panel).to_be_visible()
    await panel.get_by_role("button", name="Refresh").focus()
    await page.keyboard.press("Escape")
    await expect(panel).to_have_count(0)
    await expect(deliveries).to_be_focused()
    assert (await stored(user, msg["id"])).get("feedback") is None  # a closed box is not sent

    # A folded part of a card (here the request payload) closes like a menu.
    json_card = await user.post_message(
        agent["id"], text="Raw answer?", review={"type": "freeform", "payload": {"schema": "any"}}
    )
    summary = page.locator(f"#msg-{json_card['id']} summary", has_text="Request payload")
    await summary.focus()
    await page.keyboard.press("Enter")
    details = page.locator(f"#msg-{json_card['id']} details.payload")
    await expect(details).to_have_attribute("open", "")
    await page.keyboard.press("Escape")
    await expect(details).not_to_have_attribute("open", "")
    await expect(summary).to_be_focused()


async def test_enter_does_not_send_a_prefilled_answer(tab: Tab, user: Owner) -> None:
    """Enter in a one-line answer sends it once the field was edited; untouched, a prefilled
    answer needs the button or Ctrl+Enter."""
    agent = await user.create_agent(name="naming-bot")
    review = {"type": "text-input", "payload": {"prefill": "v1.0"}}
    first = await user.post_message(agent["id"], text="Tag name?", review=review)
    second = await user.post_message(agent["id"], text="Branch name?", review=review)
    page = tab.page
    await sign_in(page, user)

    card = page.locator(f"#msg-{first['id']}")
    field = card.get_by_label("Your answer")
    await field.focus()
    await page.keyboard.press("Enter")  # sent "v1.0" at once before
    await page.keyboard.press("End")
    await page.keyboard.type(".1")
    await page.keyboard.press("Enter")
    await expect(card.locator(".review")).to_have_attribute("data-review-status", "completed")
    assert (await stored(user, first["id"]))["response"] == {"text": "v1.0.1"}

    card = page.locator(f"#msg-{second['id']}")
    await card.get_by_label("Your answer").focus()
    await page.keyboard.press("Control+Enter")
    await expect(card.locator(".review")).to_have_attribute("data-review-status", "completed")
    assert (await stored(user, second["id"]))["response"] == {"text": "v1.0"}


async def test_ten_approvals_by_keyboard(tab: Tab, user: Owner) -> None:
    """j to the first card, then a for each: 11 key presses (131 before, by Tab and Enter)."""
    agent = await user.create_agent(name="fleet-bot")
    ids = [
        (await user.post_message(agent["id"], text=f"Run job {n}?", review=APPROVAL))["id"] for n in range(10)
    ]
    page = tab.page
    await sign_in(page, user)
    await expect(page.locator(f"#msg-{ids[-1]}")).to_be_visible()
    keys = Keys(page)
    await keys.press("j")
    for i, message_id in enumerate(ids):
        card = page.locator(f"#msg-{message_id}")
        await expect(card).to_be_focused()
        await keys.press("a")
        await expect(card.locator(".review")).to_have_attribute("data-review-status", "completed")
        if i + 1 < len(ids):
            await expect(page.locator(f"#msg-{ids[i + 1]}")).to_be_focused()
    assert keys.count == 11
    for message_id in ids:
        assert (await stored(user, message_id))["response"] == {"selectedOption": "approve"}


async def test_shortcuts_move_answer_and_go(tab: Tab, user: Owner) -> None:
    agent = await user.create_agent(name="keys-bot")
    choice = {
        "type": "approval",
        "payload": {
            "allowComment": True,
            "options": [{"id": "ship", "label": "Ship"}, {"id": "hold", "label": "Hold"}],
        },
    }
    first = await user.post_message(agent["id"], text="Ship the build?", review=choice)
    second = await user.post_message(agent["id"], text="Rotate the keys?", review=APPROVAL)
    page = tab.page
    await sign_in(page, user)
    one, two = page.locator(f"#msg-{first['id']}"), page.locator(f"#msg-{second['id']}")
    await expect(two).to_be_visible()

    await page.keyboard.press("j")
    await expect(one).to_be_focused()
    await page.keyboard.press("j")
    await expect(two).to_be_focused()
    await page.keyboard.press("k")
    await expect(one).to_be_focused()
    # Typing in a field is typing: "a" and "r" land in the comment, nothing is answered.
    await page.keyboard.press("e")
    comment = one.get_by_label("Comment")
    await expect(comment).to_be_focused()
    await page.keyboard.type("a r 2")
    await expect(comment).to_have_value("a r 2")
    # Esc goes back to the card; with Ctrl or Alt held a key is not a shortcut (either "2" here
    # would answer "Hold" before the feedback below).
    await page.keyboard.press("Escape")
    await expect(one).to_be_focused()
    await page.keyboard.press("Control+2")
    await page.keyboard.press("Alt+2")
    # f opens the feedback box of the card.
    await page.keyboard.press("f")
    await expect(one.get_by_label("Feedback for the agent")).to_be_focused()
    await page.keyboard.type("next week")
    await page.keyboard.press("Tab")  # on to the first answer button: a button, not a field
    await expect(one.get_by_role("button", name="Ship")).to_be_focused()
    await page.keyboard.press("2")  # the second option, "Hold"
    await expect(one.locator(".review")).to_have_attribute("data-review-status", "completed")
    review = await stored(user, first["id"])
    assert review["response"] == {"selectedOption": "hold", "comment": "a r 2"}
    assert review["feedback"] == "next week"

    # The focus moved on to the next card: r rejects it; o opens its channel, g i comes back.
    await expect(two).to_be_focused()
    await page.keyboard.press("o")
    await expect(page.get_by_role("heading", name="keys-bot", level=1)).to_be_focused()
    await page.keyboard.press("g")
    await page.keyboard.press("i")
    await expect(page.get_by_role("heading", name="Inbox", level=1)).to_be_focused()
    await expect(two).to_be_visible()
    await page.keyboard.press("j")  # the inbox lists what waits: the first card is the second review
    await expect(two).to_be_focused()
    await page.keyboard.press("r")
    await expect(two.locator(".review")).to_have_attribute("data-review-status", "completed")
    assert (await stored(user, second["id"]))["response"] == {"selectedOption": "reject"}


async def test_live_updates_keep_the_focus(tab: Tab, user: Owner) -> None:
    """The sidebar is rebuilt when a count changes and a card is re-rendered when its review is
    answered elsewhere: neither drops the focus to <body>."""
    agent = await user.create_agent(name="busy-bot")
    msg = await user.post_message(agent["id"], text="Restart the workers?", review=APPROVAL)
    page = tab.page
    await sign_in(page, user)
    card = page.locator(f"#msg-{msg['id']}")
    await card.get_by_role("button", name="Approve").focus()
    assert (await user.respond(msg["id"], {"selectedOption": "reject"})).status_code == 200
    await expect(card.locator(".review")).to_have_attribute("data-review-status", "completed")
    await expect(card).to_be_focused()

    link = page.get_by_role("navigation", name="Channels").get_by_role("link", name=re.compile("^busy-bot"))
    await expect(link.locator(".pending-count")).to_have_count(0)  # the answer's count is in
    await link.focus()
    await user.post_message(agent["id"], text="And the queue?", review=APPROVAL)
    await expect(link.locator(".pending-count")).to_have_text("1")
    await expect(link).to_be_focused()
