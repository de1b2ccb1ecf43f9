"""The freeform renderers the inbox ships (the four GET /api/v1/plugins lists), in Chromium, with
hostile data that must stay text."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.support.stack import Owner
from tests.web.conftest import Tab, sign_in

pytestmark = pytest.mark.slow

XSS = '<img src=x onerror="window.__xss=1">'


async def test_every_listed_plugin_renders_and_data_stays_text(tab: Tab, user: Owner) -> None:
    listed = {p["name"] for p in (await user.agent.get("/api/v1/plugins")).json()}
    assert listed == {"json", "markdown", "table", "status-badge"}
    agent = await user.create_agent(name="plugins")
    channel = agent["id"]
    table = await user.post_message(
        channel,
        text="Quarter",
        metadata={"plugin": "table", "title": "Q1", "columns": ["region", {"key": "rev", "label": "Revenue"}],
                  "rows": [["EU", 12], {"region": XSS, "rev": 7}]},
    )  # fmt: skip
    badge = await user.post_message(
        channel,
        text="Build",
        metadata={"plugin": "status-badge", "label": XSS, "variant": "success", "url": "javascript:alert(1)"},
    )
    markdown = await user.post_message(
        channel, text="Notes", metadata={"plugin": "markdown", "markdown": f"**bold** {XSS}"}
    )
    review = await user.post_message(
        channel,
        text="Check the data",
        review={"type": "freeform", "payload": {"plugin": "json", "data": {"a": [1, {"b": XSS}]}}},
    )
    unknown = await user.post_message(channel, text="Other", metadata={"plugin": "nope", "x": 1})
    page = tab.page
    await sign_in(page, user, f"#/c/{channel}")
    cells = page.locator(f"#msg-{table['id']} .plugin-table")
    await expect(cells.locator("th")).to_have_text(["region", "Revenue"])
    await expect(cells.locator("tbody tr").nth(1).locator("td").first).to_have_text(XSS)
    badge_el = page.locator(f"#msg-{badge['id']} .plugin")
    await expect(badge_el.locator(".status-success")).to_have_text(XSS)
    await expect(badge_el.locator("a")).to_have_count(0)  # a javascript: URL is not a link
    await expect(page.locator(f"#msg-{markdown['id']} .plugin .md strong")).to_have_text("bold")
    review_el = page.locator(f"#msg-{review['id']}")
    await expect(review_el.locator(".plugin[data-plugin='json'] .json-tree").first).to_be_visible()
    await expect(review_el.locator("textarea[name='json']")).to_be_visible()  # still answerable
    await expect(page.locator(f"#msg-{unknown['id']} .plugin .json-tree")).to_have_count(1)
    assert await page.evaluate("window.__xss") is None
    assert await page.locator("img[src='x']").count() == 0
    assert not tab.errors
