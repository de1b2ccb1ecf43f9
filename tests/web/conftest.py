"""Headless Chromium (Debian's package, never a Playwright download) against the real stack.

One browser for the session; each test gets a fresh context (own storage, own live streams) and
fails if the page threw an uncaught error."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Error, Page, async_playwright, expect

from tests.support.stack import Owner, RunningStack

CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
# Shared machine, several suites at once: generous, and never a wall-clock assertion.
TIMEOUT_MS = 10_000
expect.set_options(timeout=TIMEOUT_MS)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's headless Chromium under Playwright, closed on the way out."""
    if not HAVE_CHROMIUM:
        pytest.fail("Chromium is missing: run `make browser` (apt-get install chromium)")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


class Tab:
    """A page plus the uncaught errors it raised."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))


@pytest.fixture
async def context(browser: Browser, stack: RunningStack) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(base_url=stack.url, viewport={"width": 1280, "height": 860})
    ctx.set_default_timeout(TIMEOUT_MS)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest.fixture
async def tab(context: BrowserContext) -> AsyncIterator[Tab]:
    tab = Tab(await context.new_page())
    yield tab
    assert not tab.errors, f"uncaught errors in the page: {tab.errors}"


@pytest.fixture
async def user(stack: RunningStack) -> AsyncIterator[Owner]:
    async with await stack.new_owner() as created:
        yield created


async def sign_in(page: Page, owner: Owner, hash_: str = "#/inbox") -> None:
    """Log in through the form and wait until the live stream is connected."""
    await page.goto(f"/{hash_}")
    await page.get_by_label("E-mail").fill(owner.email)
    await page.get_by_label("Password").fill(owner.password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")


async def open_tab(context: BrowserContext) -> Tab:
    return Tab(await context.new_page())


__all__ = ["Error", "Tab", "open_tab", "sign_in"]
