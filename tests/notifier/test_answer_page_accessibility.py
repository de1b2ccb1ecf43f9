"""The e-mail answer pages under axe-core (issue #35): the confirmation, the result and a used
link, in the light and dark schemes, on a phone and on a desktop, in Debian's Chromium. The link
is a real one, from a real e-mail sent by the notifier."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Literal

import pytest
from playwright.async_api import Browser, Page, ViewportSize

from tests.notifier.conftest import Notify
from tests.notifier.test_email import APPROVAL, mail_for
from tests.support.stack import Owner
from tests.web import axe
from tests.web.conftest import chromium

pytestmark = pytest.mark.slow

Scheme = Literal["light", "dark"]
SCHEMES: tuple[Scheme, ...] = ("light", "dark")
SCREENS: dict[str, ViewportSize] = {
    "phone": {"width": 390, "height": 844},
    "desktop": {"width": 1280, "height": 860},
}


@contextlib.asynccontextmanager
async def opened(browser: Browser, scheme: Scheme, screen: str) -> AsyncIterator[Page]:
    context = await browser.new_context(
        viewport=SCREENS[screen],
        color_scheme=scheme,
        is_mobile=screen == "phone",
        has_touch=screen == "phone",
    )
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def audit(page: Page, where: str, found: list[str]) -> None:
    if blocked := axe.blocking(await axe.violations(page)):
        found.append(axe.report(where, blocked))


async def test_the_answer_pages_have_no_serious_axe_violation(notify: Notify, person: Owner) -> None:
    agent = await person.create_agent(name="mail-bot")
    text = "Deploy **v2.1** to production?\n\nChangelog: fixes"
    await person.post_message(agent["id"], text=text, review=APPROVAL)
    (mail,) = await mail_for(notify, person.email)
    link = mail.links()[0]
    found: list[str] = []
    async with chromium() as browser:
        # Opening the link answers nothing: each scheme and screen sees the confirmation.
        for scheme in SCHEMES:
            for screen in SCREENS:
                async with opened(browser, scheme, screen) as page:
                    await page.goto(link)
                    await page.get_by_role("heading", name="Confirm your answer").wait_for()
                    await audit(page, f"confirm ({scheme}, {screen})", found)
        async with opened(browser, "light", "phone") as page:
            await page.goto(link)
            await page.get_by_role("button", name="Confirm: Ship it").click()
            await page.get_by_role("heading", name="Answer recorded").wait_for()
            await audit(page, "answer recorded (light, phone)", found)
        for scheme in SCHEMES:
            async with opened(browser, scheme, "phone") as page:
                await page.goto(link)
                await page.get_by_role("heading", name="Link already used").wait_for()
                await audit(page, f"link already used ({scheme}, phone)", found)
    assert not found, "axe-core on the answer pages:\n" + "\n".join(found)
