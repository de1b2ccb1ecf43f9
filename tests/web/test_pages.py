"""The operator page, the login form, keyboard use and a phone-width screen."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, expect

from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack
from tests.web.conftest import TIMEOUT_MS, Tab, sign_in

pytestmark = pytest.mark.slow

APPROVAL = {"type": "approval", "payload": {}}


async def test_login_errors_and_sign_out(tab: Tab, user: Owner) -> None:
    page = tab.page
    await page.goto("/")
    await page.get_by_label("E-mail").fill(user.email)
    await page.get_by_label("Password").fill("not-the-password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("Wrong e-mail or password.")
    await page.get_by_label("Password").fill(user.password)
    await page.get_by_label("Password").press("Enter")
    await expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    await page.reload()  # the session survives a reload
    await expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in to Sayso")).to_be_visible()
    assert await page.evaluate("localStorage.getItem('sayso.session')") is None


async def test_operator_page_live(tab: Tab, user: Owner, receiver: Receiver) -> None:
    agent = await user.create_agent(name="ops-bot", webhookUrl=receiver.url("/ops"))
    for _ in range(2):
        msg = await user.post_message(agent["id"], review=APPROVAL)
        assert (await user.respond(msg["id"], {"selectedOption": "approve"})).status_code == 200
    later = await user.post_message(agent["id"], review=APPROVAL)
    await receiver.wait_for("/ops", count=2)

    page = tab.page
    await sign_in(page, user, "#/ops")
    tile = page.locator('[data-stat="delivered"] .tile-value')
    await expect(tile).to_have_text("2")
    await expect(page.locator('[data-stat="pending"] .tile-value')).to_have_text("1")
    await expect(page.locator('[data-stat="open-circuits"] .tile-value')).to_have_text("0")
    await expect(page.locator('[data-stat="oldest"] .tile-value')).to_have_text(
        re.compile(r"^(\d+s|\d+m \d+s)$")
    )
    await expect(page.locator(".chart-svg rect.bar-ok")).not_to_have_count(0)
    await expect(page.locator(f'tr[data-host="127.0.0.1:{receiver.port}"]')).to_contain_text("closed")
    await expect(page.get_by_role("link", name="ops-bot", exact=True)).to_be_visible()

    # Live: an answer elsewhere moves the numbers without a reload.
    assert (await user.respond(later["id"], {"selectedOption": "reject"})).status_code == 200
    await expect(tile).to_have_text("3")
    await expect(page.locator('[data-stat="pending"] .tile-value')).to_have_text("0")
    await expect(page.locator('[data-stat="oldest"] .tile-value')).to_have_text("—")


async def test_phone_width_and_keyboard(browser: Browser, stack: RunningStack, user: Owner) -> None:
    agent = await user.create_agent(name="pocket-bot")
    msg = await user.post_message(
        agent["id"],
        text="Approve from your phone?",
        review={"type": "approval", "payload": {"allowComment": True}},
    )
    context = await browser.new_context(
        base_url=stack.url, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await sign_in(page, user)
        # The sidebar gives way to a Channels page.
        await expect(page.get_by_role("navigation", name="Channels")).to_be_hidden()
        await page.get_by_role("link", name="Channels").click()
        await page.locator(f'.channel-link[data-channel-id="{agent["id"]}"]').click()
        await expect(page.get_by_role("heading", name="pocket-bot")).to_be_visible()
        card = page.locator(f"#msg-{msg['id']}")
        # Keyboard only: Tab from the comment box reaches the first answer button; Enter answers.
        await card.get_by_label("Comment").focus()
        await page.keyboard.press("Tab")
        approve = card.get_by_role("button", name="Approve")
        await expect(approve).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(card.locator(".review")).to_have_attribute("data-review-status", "completed")
        # Nothing wider than the screen.
        loaded = {
            f"#/c/{agent['id']}": "article.msg",
            f"#/c/{agent['id']}/settings": "#tr-title",
            "#/ops": '[data-stat="oldest"]',
            "#/inbox": ".inbox .empty:not(.filtered-out)",
        }
        for route, ready in loaded.items():
            await page.goto(f"/{route}")
            await expect(page.locator(ready)).to_be_visible()
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, (route, overflow)
        assert not errors, errors
    finally:
        await context.close()


async def test_a_channel_in_error_is_not_painted_as_a_plugin_badge(tab: Tab, user: Owner) -> None:
    """A channel's status chip and the plugins' status badge share the class ``status-error``;
    the badge's pink background must stay on the badge (issue #35, item 8)."""
    agent = await user.create_agent(name="failing-bot")
    ping = await user.agent.post(
        "/api/v1/status/ping", json={"agentId": agent["id"], "status": "error", "message": "disk full"}
    )
    assert ping.status_code in (200, 201), ping.text
    await sign_in(tab.page, user, f"#/c/{agent['id']}")
    chip = tab.page.locator(".status.status-error").first
    await expect(chip).to_be_visible()
    background = await chip.evaluate("el => getComputedStyle(el).backgroundColor")
    assert background != "rgb(251, 213, 213)", background  # the plugin badge's pink


async def test_the_skip_link_moves_focus_and_keeps_the_page(tab: Tab, user: Owner) -> None:
    """On a channel page, "Skip to content" focuses the content and stays on that channel (the
    router used to read ``#main`` as a page address and open the inbox; issue #35, item 3)."""
    agent = await user.create_agent(name="skip-bot")
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}")
    await expect(page.get_by_role("heading", name="skip-bot")).to_be_visible()
    skip = page.get_by_role("link", name="Skip to content")
    await skip.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#main")).to_be_focused()
    assert page.url.endswith(f"#/c/{agent['id']}"), page.url
    await expect(page.get_by_role("heading", name="skip-bot")).to_be_visible()
