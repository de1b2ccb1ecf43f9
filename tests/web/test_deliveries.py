"""The delivery view of a message: every attempt with its status, latency and error, and a
retry button that re-sends a failed webhook."""

from __future__ import annotations

import pytest
from aiohttp import web
from playwright.async_api import expect

from tests.support.receiver import Received, Receiver
from tests.support.stack import Owner
from tests.web.conftest import Tab, sign_in

pytestmark = pytest.mark.slow


async def test_retry_a_failed_delivery(tab: Tab, user: Owner, receiver: Receiver) -> None:
    async def refuse(_: web.Request, __: Received) -> web.StreamResponse:
        return web.json_response({"error": "not today"}, status=400)

    # 400 fails at once, without automatic retries: only the button sends it again.
    receiver.routes["/flaky"] = refuse
    agent = await user.create_agent(name="flaky-bot", webhookUrl=receiver.url("/flaky"))
    msg = await user.post_message(
        agent["id"], text="Restart the cluster?", review={"type": "approval", "payload": {}}
    )
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}")
    bubble = page.locator(f"#msg-{msg['id']}")
    await bubble.get_by_role("button", name="Approve").click()
    await receiver.wait_for("/flaky")
    await expect(bubble.locator("[data-delivery]")).to_have_attribute("data-delivery", "webhook_failed")

    await bubble.get_by_role("button", name="Deliveries").click()
    panel = bubble.get_by_role("region", name="Webhook deliveries")
    delivery = panel.locator(".delivery")
    await expect(delivery).to_have_attribute("data-state", "failed")
    first = delivery.locator("tbody tr").first
    await expect(first.locator("td").nth(1)).to_have_text("400")
    await expect(first.locator("td").nth(2)).to_contain_text(" ms")
    await expect(first.locator("td").nth(3)).to_contain_text("http_status")
    await expect(delivery.locator(".url")).to_have_text(receiver.url("/flaky"))

    del receiver.routes["/flaky"]  # the receiver is fixed: answers 200 from now on
    await panel.get_by_role("button", name="Retry delivery").click()
    hooks = await receiver.wait_for("/flaky", count=2)
    assert hooks[0].headers["webhook-id"] == hooks[1].headers["webhook-id"]
    assert hooks[0].body == hooks[1].body
    # delivery:status events refresh the open panel and the badge, no reload.
    await expect(delivery).to_have_attribute("data-state", "delivered")
    await expect(delivery.locator("tbody tr")).to_have_count(2)
    await expect(delivery.locator("tbody tr").nth(1).locator("td").nth(1)).to_have_text("200")
    await expect(bubble.locator("[data-delivery]")).to_have_attribute("data-delivery", "webhook_delivered")


async def test_the_panel_names_the_endpoint_each_delivery_went_to(
    tab: Tab, user: Owner, receiver: Receiver
) -> None:
    agent = await user.create_agent(name="fan-out-bot", webhookUrl=receiver.url("/own"))
    made = await user.agent.post(
        f"/api/v1/agents/{agent['id']}/endpoints",
        json={"url": receiver.url("/audit"), "description": "Audit log"},
    )
    assert made.status_code == 201, made.text
    endpoint_id = made.json()["id"]
    lake = await user.human.post(
        "/api/v1/endpoints", json={"url": receiver.url("/lake"), "description": "Data lake"}
    )
    assert lake.status_code == 201, lake.text
    msg = await user.post_message(
        agent["id"], text="Refund 40 EUR?", review={"type": "approval", "payload": {}}
    )
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}")
    bubble = page.locator(f"#msg-{msg['id']}")
    await bubble.get_by_role("button", name="Approve").click()
    await receiver.wait_for("/audit")
    await receiver.wait_for("/lake")
    await bubble.get_by_role("button", name="Deliveries").click()
    panel = bubble.get_by_role("region", name="Webhook deliveries")
    await expect(panel.locator(".delivery")).to_have_count(3)
    to_lake = panel.locator(f'.delivery[data-endpoint-id="{lake.json()["id"]}"]')
    await expect(to_lake.locator(".target")).to_have_text("endpoint Data lake (account-wide)")
    to_endpoint = panel.locator(f'.delivery[data-endpoint-id="{endpoint_id}"]')
    # Named by its description, not its id.
    await expect(to_endpoint.locator(".target")).to_have_text("endpoint Audit log")
    await expect(to_endpoint.locator(".url")).to_have_text(receiver.url("/audit"))
    own = panel.locator('.delivery[data-endpoint-id=""]')
    await expect(own.locator(".target")).to_have_text("agent URL")
    await expect(own.locator(".url")).to_have_text(receiver.url("/own"))


async def test_an_answer_with_no_webhook_says_so(tab: Tab, user: Owner) -> None:
    """An agent without a webhook URL: the answered review says "No webhook configured", not
    "Webhook queued" for a webhook that will never go out, and so does its Deliveries panel."""
    agent = await user.create_agent(name="hookless-bot")
    msg = await user.post_message(agent["id"], text="Ship it?", review={"type": "approval", "payload": {}})
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}")
    bubble = page.locator(f"#msg-{msg['id']}")
    await bubble.get_by_role("button", name="Approve").click()
    badge = bubble.locator("[data-delivery]")
    await expect(badge).to_have_attribute("data-delivery", "none")
    await expect(badge).to_have_text("No webhook configured")
    # The same message read back from the server (a reload) says the same.
    await page.reload()
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    await expect(badge).to_have_text("No webhook configured")
    await bubble.get_by_role("button", name="Deliveries").click()
    panel = bubble.get_by_role("region", name="Webhook deliveries")
    await expect(panel).to_contain_text("No webhook configured for this agent, so nothing is sent")


TARGETS = """async (cases) => {
  const { hasWebhookTarget } = await import("/static/messages.js");
  return cases.map(([message, agent]) => hasWebhookTarget(message, agent));
}"""

ANSWERED = {"review": {"status": "completed"}}
EXPIRED = {"review": {"status": "expired"}}
HOOK = "https://agent.example.com/hook"


@pytest.mark.parametrize(
    ("message", "agent", "has_target"),
    [
        (ANSWERED, {}, False),
        (ANSWERED, {"webhookUrl": None}, False),
        (ANSWERED, {"webhookUrl": HOOK}, True),
        (ANSWERED, {"webhookUrl": HOOK, "webhookEnabled": False}, False),  # disabled by a 410
        (ANSWERED, {"webhookUrl": HOOK, "webhookEvents": ["review:expired"]}, False),
        (EXPIRED, {"webhookUrl": HOOK, "webhookEvents": ["review:expired"]}, True),
        (EXPIRED, {"webhookUrl": HOOK, "webhookEvents": ["review:responded"]}, False),
        (EXPIRED, {"webhookUrl": HOOK, "webhookEvents": []}, True),  # none listed: the defaults
        ({**ANSWERED, "webhookUrl": HOOK}, {}, True),  # the message's own URL
        ({"review": {"status": "completed", "callback": {"url": HOOK}}}, {}, True),  # legacy callback
        (ANSWERED, None, True),  # an agent the page does not know yet: no false "none"
    ],
)
async def test_which_answers_have_a_webhook_to_go_to(
    tab: Tab, message: dict[str, object], agent: dict[str, object] | None, has_target: bool
) -> None:
    if tab.page.url == "about:blank":
        await tab.page.goto("/")
    assert await tab.page.evaluate(TARGETS, [[message, agent]]) == [has_target]
