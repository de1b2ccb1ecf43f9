"""The review policies in the browser: the owner shares a channel from its settings, owner and
member vote on a quorum review in two browsers (each sees the other's vote live), and a review
that expires shows the default that applied."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Dialog, expect

from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack
from tests.web.conftest import TIMEOUT_MS, Tab, sign_in

pytestmark = pytest.mark.slow


async def accept(dialog: Dialog) -> None:
    await dialog.accept()


async def test_members_and_a_quorum_across_two_browsers(
    browser: Browser, stack: RunningStack, tab: Tab, user: Owner, receiver: Receiver
) -> None:
    member = await stack.new_owner()
    agent = await user.create_agent(name="deploy-team", webhookUrl=receiver.url("/quorum"))
    page = tab.page
    page.on("dialog", accept)
    await sign_in(page, user, f"#/c/{agent['id']}/settings")
    members = page.locator("section", has=page.get_by_role("heading", name="Members"))
    await expect(members.get_by_text("Only you review this channel.")).to_be_visible()
    await members.get_by_label("E-mail of an existing user").fill("nobody@example.test")
    await members.get_by_role("button", name="Add member").click()
    await expect(members.get_by_role("alert")).to_have_text("No user has this e-mail.")
    await members.get_by_label("E-mail of an existing user").fill(member.email)
    await members.get_by_role("button", name="Add member").click()
    await expect(members.locator(f'tr[data-member-id="{member.user_id}"]')).to_contain_text(member.email)

    msg = await user.post_message(
        agent["id"],
        text="Deploy **v3** to production?",
        review={"type": "approval", "quorum": {"approvals": 2}},
    )
    await page.goto(f"/#/c/{agent['id']}")
    mine = page.locator(f"#msg-{msg['id']}")
    await expect(mine.locator(".quorum-count")).to_have_text("0 of 2 approvals needed")

    other = await browser.new_context(base_url=stack.url, viewport={"width": 1280, "height": 860})
    other.set_default_timeout(TIMEOUT_MS)
    try:
        theirs = Tab(await other.new_page())
        await sign_in(theirs.page, member, "#/inbox")
        card = theirs.page.locator(f"#msg-{msg['id']}")
        await expect(card.get_by_role("link", name="deploy-team")).to_be_visible()  # the shared channel
        # A vote carries no feedback: the card offers none.
        await expect(card.get_by_role("button", name="Add feedback")).to_have_count(0)
        await card.get_by_role("button", name="Approve").click()
        await expect(card.locator(".your-vote")).to_contain_text("You voted Approve")
        await expect(card.locator(".quorum-count")).to_have_text("1 of 2 approvals needed")

        # The owner's page hears of the vote live, with who voted what.
        await expect(mine.locator(".quorum-count")).to_have_text("1 of 2 approvals needed")
        await expect(mine.locator(f'.vote[data-voter="{member.email}"]')).to_contain_text("Approve")
        await mine.get_by_role("button", name="Approve").click()
        await expect(mine.locator(".review")).to_have_attribute("data-review-status", "completed")
        await expect(mine.locator(".review-outcome")).to_contain_text("Decided by the votes")
        await expect(mine.locator(".quorum-count")).to_have_text("2 of 2 approvals needed")
        await expect(mine.locator(".vote")).to_have_count(2)

        # ... and the member's page of the outcome.
        await expect(card.locator(".review")).to_have_attribute("data-review-status", "completed")
        await expect(card.locator(".vote")).to_have_count(2)
        [hook] = await receiver.wait_for("/quorum")
        assert hook.json()["response"] == {"selectedOption": "approve"}
        assert [v["email"] for v in hook.json()["votes"]] == [member.email, user.email]

        # A member reads and answers; the channel's settings, composer and deliveries are the owner's.
        await theirs.page.goto(f"/#/c/{agent['id']}")
        await expect(theirs.page.locator(".badge-shared")).to_have_text("Shared with you")
        await expect(theirs.page.get_by_role("link", name="Agent settings")).to_be_hidden()
        await expect(theirs.page.locator("#composer")).to_be_hidden()
        await expect(card.locator(".review")).to_have_attribute("data-review-status", "completed")
        await expect(card.get_by_role("button", name="Deliveries")).to_have_count(0)
        await expect(mine.get_by_role("button", name="Deliveries")).to_have_count(1)
        await theirs.page.goto(f"/#/c/{agent['id']}/settings")
        await expect(theirs.page.locator(".settings-body")).to_contain_text("Only its owner manages it.")
        await expect(theirs.page.get_by_role("heading", name="Members")).to_have_count(0)
        assert not theirs.errors, theirs.errors
    finally:
        await other.close()
        await member.aclose()

    await page.goto(f"/#/c/{agent['id']}/settings")
    await members.get_by_role("button", name=f"Remove {member.email}").click()
    await expect(members.get_by_text("Only you review this channel.")).to_be_visible()
    assert (await user.human.get(f"/api/v1/agents/{agent['id']}/members")).json()["data"] == []


async def test_a_default_on_expiry_is_shown_before_and_after(tab: Tab, user: Owner) -> None:
    agent = await user.create_agent(name="expiry-bot")
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}")
    msg = await user.post_message(
        agent["id"],
        text="Rotate the production keys?",
        review={
            "type": "approval",
            "expiresInSeconds": 3,
            "onExpire": {"response": {"selectedOption": "reject", "comment": "no answer, no rotation"}},
        },
    )
    card = page.locator(f"#msg-{msg['id']}")
    await expect(card.locator(".default-hint")).to_contain_text("the agent's default applies")
    await expect(card.locator(".default-hint .chip")).to_have_text("Reject")
    # The expiry arrives live: the card shows what applied.
    await expect(card.locator(".review")).to_have_attribute("data-review-status", "expired", timeout=30_000)
    await expect(card.locator(".review-default")).to_contain_text("the agent's default applied")
    await expect(card.locator(".review-default .chip")).to_have_text("Reject")
    await expect(card.locator(".review-default .answer-comment")).to_have_text("no answer, no rotation")
