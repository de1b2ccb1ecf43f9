"""Per-agent settings in the browser: webhook URL and headers, a test send, secret rotation,
inbound token webhooks and signed triggers, with secrets shown once and copyable."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import BrowserContext, Dialog, expect
from standardwebhooks import Webhook

from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack
from tests.web.conftest import Tab, sign_in

pytestmark = pytest.mark.slow


async def accept(dialog: Dialog) -> None:
    await dialog.accept()


async def test_agent_settings(
    stack: RunningStack, context: BrowserContext, tab: Tab, user: Owner, receiver: Receiver
) -> None:
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    agent = await user.create_agent(name="settings-bot")
    page = tab.page
    page.on("dialog", accept)
    await sign_in(page, user, f"#/c/{agent['id']}")
    await page.get_by_role("link", name="Agent settings").click()
    await expect(page.get_by_role("heading", name="settings-bot — settings")).to_be_visible()

    # Webhook URL, an extra header (write-only), one more event.
    await page.get_by_label("Default webhook URL").fill(receiver.url("/agent"))
    await page.get_by_label("Human messages").check()
    await page.get_by_role("button", name="Add header").click()
    await page.get_by_label("Header name").fill("X-Agent-Token")
    await page.get_by_label("Header value").fill("s3cret")
    await page.get_by_role("button", name="Save webhook").click()
    await expect(page.get_by_text("Saved.")).to_be_visible()
    saved = (await user.agent.get(f"/api/v1/agents/{agent['id']}")).json()
    assert saved["webhookUrl"] == receiver.url("/agent")
    assert saved["webhookHeaders"] == {"X-Agent-Token": "***"}
    assert "message:created" in saved["webhookEvents"]

    # Rotate the signing secret: shown once, copyable; the next request is signed with it.
    await page.get_by_role("button", name="Rotate signing secret").click()
    shown = page.locator('[data-secret="Secret"]')
    await expect(shown).to_contain_text("whsec_")
    secret = await shown.inner_text()
    copy = page.locator(".secret-box").get_by_role("button", name="Copy")
    await copy.click()
    await expect(page.locator(".secret-box .secret-row button")).to_have_text("Copied")
    assert await page.evaluate("navigator.clipboard.readText()") == secret

    # Test send: the receiver gets a signed webhook:test with the header; the page says so.
    await page.get_by_role("button", name="Send test event").click()
    await expect(page.locator(".test-result")).to_contain_text("Delivered — 200")
    test = (await receiver.wait_for("/agent"))[0]
    assert test.json()["event"] == "webhook:test"
    assert test.headers["x-agent-token"] == "s3cret"
    Webhook(secret).verify(test.body, test.headers)  # raises if no signature matches

    # Inbound token webhook: URL and token shown once; posting to it lands in the channel.
    inbound = page.get_by_role("form", name="New inbound webhook")
    await inbound.get_by_label("Name").fill("CI")
    await inbound.get_by_role("button", name="Create webhook URL").click()
    url = await page.locator('[data-secret="URL"]').first.inner_text()
    token = await page.locator('[data-secret="Token"]').inner_text()
    assert url.endswith(token)
    await expect(page.locator("tr", has_text="CI")).to_contain_text("active")
    async with httpx.AsyncClient(timeout=30) as anyone:
        posted = await anyone.post(
            f"{stack.url}/api/webhooks/execute/{token}", json={"content": "Build #7 **passed**"}
        )
    assert posted.status_code == 200
    await page.locator("tr", has_text="CI").get_by_role("button", name="Disable").click()
    await expect(page.locator("tr", has_text="CI")).to_contain_text("disabled")

    # Signed trigger: secret shown once.
    trigger = page.get_by_role("form", name="New signed trigger")
    await trigger.get_by_label("Name").fill("exports")
    await trigger.get_by_label("Text pointer").fill("/summary")
    await trigger.get_by_label("Ask for a review").select_option("approval")
    await trigger.get_by_label("Required pointers").fill("/summary, /export_id")
    await trigger.get_by_role("button", name="Create trigger").click()
    await expect(page.locator(".secret-box", has_text='Trigger "exports"')).to_contain_text("whsec_")
    listed = (await user.agent.get(f"/api/v1/agents/{agent['id']}/triggers")).json()["data"]
    assert [(t["name"], t["mapping"]["reviewType"], t["required"]) for t in listed] == [
        ("exports", "approval", ["/summary", "/export_id"])
    ]
    # A bad pointer: the API's 422 message is shown.
    await trigger.get_by_label("Name").fill("broken")
    await trigger.get_by_label("Text pointer").fill("no-slash")
    await trigger.get_by_role("button", name="Create trigger").click()
    await expect(page.get_by_role("alert").filter(has_text="mapping.text")).to_be_visible()

    # Shown once: after a reload, no secret or token is on the page.
    await page.reload()
    await expect(page.locator("tr", has_text="exports")).to_be_visible()
    assert token not in await page.content()
    await expect(page.locator(".secret-box")).to_have_count(0)

    # The inbound message is in the channel, from the webhook.
    await page.get_by_role("link", name="Back to channel").click()
    await expect(page.locator("article.from-webhook .md strong")).to_have_text("passed")
