"""The e-mail answer page on a phone (issue #35, item 1): a long review scrolls with the finger
or the wheel, and its Confirm button answers. Headless Chromium from Debian at 390 x 844."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page, ViewportSize

from tests.notifier.conftest import Notify
from tests.notifier.test_email import APPROVAL, mail_for
from tests.support.stack import Owner
from tests.web.conftest import chromium

pytestmark = pytest.mark.slow

PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture
async def phone() -> AsyncIterator[Page]:
    async with chromium() as browser:
        context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
        yield await context.new_page()


async def test_a_long_review_scrolls_and_confirms_on_a_phone(
    notify: Notify, person: Owner, phone: Page
) -> None:
    agent = await person.create_agent(name="phone-bot")
    text = "\n\n".join(f"Step {i}: " + "check the migration plan and its rollback. " * 4 for i in range(12))
    assert len(text) > 1_900
    msg = await person.post_message(agent["id"], text=text, review=APPROVAL)
    (mail,) = await mail_for(notify, person.email)
    await phone.goto(mail.links()[0])
    confirm = phone.get_by_role("button", name="Confirm: Ship it")
    box = await confirm.bounding_box()
    assert box is not None
    assert box["y"] > PHONE["height"], box  # below the fold: the page must scroll to reach it
    await phone.mouse.move(PHONE["width"] / 2, PHONE["height"] / 2)
    for _ in range(20):
        await phone.mouse.wheel(0, 400)
    scrolled = await phone.evaluate("() => window.scrollY || document.scrollingElement.scrollTop")
    assert scrolled > 0, "the wheel did not move the page"
    box = await confirm.bounding_box()
    assert box is not None
    assert box["y"] >= 0, box  # now on screen
    assert box["y"] + box["height"] <= PHONE["height"], box
    await confirm.click()
    await phone.get_by_text("Answer recorded").wait_for()
    answered = (await person.agent.get(f"/api/v1/reviews/{msg['id']}")).json()["review"]
    assert answered["response"] == {"selectedOption": "approve"}
