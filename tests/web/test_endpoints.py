"""Webhook endpoints in the browser (issue #31): the channel settings' endpoint list (create with
the secret shown once, an event delivered to a real receiver signed with it, a bad filter's 422
at its field, disable/enable with the reason, replay, delete) and the operator page's
per-endpoint rows (pending, failed, circuit, disabled)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import BrowserContext, Dialog, expect
from standardwebhooks import Webhook

from sayso_common.endpoints import (
    DEFAULT_ENDPOINT_EVENTS,
    ENDPOINT_EVENTS,
    ENDPOINT_FORMATS,
    MAX_ENDPOINTS,
    MAX_RATE_LIMIT,
    groups,
)
from tests.support.receiver import Received, Receiver
from tests.support.stack import Owner, RunningStack, eventually
from tests.web.conftest import Tab, sign_in

pytestmark = pytest.mark.slow

APPROVAL = {"type": "approval", "payload": {}}
BAD_FILTER = {"message.text": {"$gtx": 1}}


async def accept(dialog: Dialog) -> None:
    await dialog.accept()


async def _endpoints(owner: Owner, channel_id: str | None) -> list[dict[str, Any]]:
    path = f"/api/v1/agents/{channel_id}/endpoints" if channel_id else "/api/v1/endpoints"
    resp = await owner.human.get(path)
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


async def test_endpoint_lifecycle_in_the_channel_settings(
    context: BrowserContext, tab: Tab, user: Owner, receiver: Receiver
) -> None:
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    agent = await user.create_agent(name="hooks-bot")
    account = await user.human.post(
        "/api/v1/endpoints", json={"url": receiver.url("/everything"), "description": "Data lake"}
    )
    assert account.status_code == 201, account.text
    choices = (await user.human.get("/api/v1/endpoints/choices")).json()
    page = tab.page
    page.on("dialog", accept)
    await sign_in(page, user, f"#/c/{agent['id']}/settings")
    section = page.locator('[data-section="endpoints"]')

    # The owner's account-wide endpoint is listed with the channel's, marked as such.
    lake = section.locator(f'[data-endpoint-id="{account.json()["id"]}"]')
    await expect(lake.locator(".endpoint-name")).to_have_text("Data lake")
    await expect(lake.locator(".badge-shared")).to_have_text("account-wide")

    # Create: the event types are the server's list, the defaults ticked.
    await section.get_by_role("button", name="Add endpoint").click()
    form = section.get_by_role("form", name="New endpoint")
    await expect(form.get_by_label("URL")).to_be_focused()
    boxes = form.locator(".endpoint-event:not(.endpoint-group)")
    assert await boxes.evaluate_all("els => els.map(e => e.value)") == choices["eventTypes"]
    group_boxes = form.locator(".endpoint-group")
    assert await group_boxes.evaluate_all("els => els.map(e => e.value)") == choices["groups"]
    assert (
        await boxes.evaluate_all("els => els.filter(e => e.checked).map(e => e.value)")
        == choices["defaultEventTypes"]
    )
    await form.get_by_label("URL").fill(receiver.url("/audit"))
    await form.get_by_label("Description").fill("Audit log")
    await form.get_by_label("Body format").select_option("standard")
    await form.get_by_label("Rate limit (deliveries per second)").fill("5")
    await form.get_by_role("button", name="Add header").click()
    await form.get_by_label("Header name").fill("X-Team")
    await form.get_by_label("Header value").fill("payments")
    await form.get_by_role("button", name="Create endpoint").click()

    # The secret, once, with a copy button and the warning.
    box = section.locator(".endpoint-secret")
    shown = box.locator('[data-secret="Secret"]')
    await expect(shown).to_contain_text("whsec_")
    await expect(box).to_contain_text("You won't see it again")
    await expect(box).not_to_contain_text("null")
    secret = await shown.inner_text()
    await expect(box.get_by_role("button", name="Copy")).to_be_focused()
    await box.get_by_role("button", name="Copy").click()
    assert await page.evaluate("navigator.clipboard.readText()") == secret
    [made] = await _endpoints(user, agent["id"])
    assert (made["description"], made["format"], made["rateLimit"], made["headers"]) == (
        "Audit log",
        "standard",
        5,
        {"X-Team": "***"},
    )
    row = section.locator(f'[data-endpoint-id="{made["id"]}"]')
    await expect(row.locator(".endpoint-name")).to_have_text("Audit log")
    await expect(row).to_have_attribute("data-state", "enabled")

    # An answer reaches the real receiver, signed with the secret the page showed.
    msg = await user.post_message(agent["id"], text="Refund 40 EUR?", review=APPROVAL)
    assert (await user.respond(msg["id"], {"selectedOption": "approve"})).status_code == 200
    [hook] = await receiver.wait_for("/audit")
    Webhook(secret).verify(hook.body, hook.headers)  # raises if no signature matches
    assert hook.headers["x-team"] == "payments"
    assert hook.json()["type"] == "review.responded"  # the Standard Webhooks envelope

    # Shown once: after a reload, the secret is nowhere on the page.
    await page.reload()
    await expect(row.locator(".endpoint-name")).to_have_text("Audit log")
    assert secret not in await page.content()
    await expect(section.locator(".secret-box")).to_have_count(0)

    # Rotation: a new secret, shown once the same way; the old one also signs for a while.
    await row.get_by_role("button", name="Rotate the signing secret of Audit log").click()
    await expect(shown).to_contain_text("whsec_")
    rotated = await shown.inner_text()
    assert rotated != secret
    await expect(box).to_contain_text("You won't see it again")
    await expect(box).to_contain_text("The previous secret also signs until")

    # A filter the server refuses: its 422 message, at the field, which is marked invalid.
    refused = await user.human.patch(
        f"/api/v1/agents/{agent['id']}/endpoints/{made['id']}", json={"filter": BAD_FILTER}
    )
    assert refused.status_code == 422
    message = refused.json()["error"]["message"]
    await row.get_by_role("button", name="Edit Audit log").click()
    edit = row.get_by_role("form", name="Edit Audit log")
    filter_box = edit.get_by_label("Filter (JSON)")
    await filter_box.fill(json.dumps(BAD_FILTER))
    await edit.get_by_role("button", name="Save endpoint").click()
    error = edit.locator(f"#{await filter_box.get_attribute('id')}-error")
    await expect(error).to_have_text(message)
    await expect(filter_box).to_have_attribute("aria-invalid", "true")
    await expect(filter_box).to_be_focused()
    assert "error" in (await filter_box.get_attribute("aria-describedby") or "")
    # A good one saves; Escape-free path: the row shows it.
    await filter_box.fill('{"message.text": {"$regex": "^Refund"}}')
    await edit.get_by_role("button", name="Save endpoint").click()
    await expect(row.locator(".endpoint-facts")).to_contain_text('{"message.text":{"$regex":"^Refund"}}')
    [saved] = await _endpoints(user, agent["id"])
    assert saved["filter"] == {"message.text": {"$regex": "^Refund"}}

    # Disable, with the reason shown; enable again.
    await row.get_by_role("button", name="Disable Audit log").click()
    await expect(row).to_have_attribute("data-state", "disabled")
    await expect(row.locator(".endpoint-reason")).to_have_text("Disabled: disabled by owner")
    assert (await _endpoints(user, agent["id"]))[0]["disabled"] is True
    await row.get_by_role("button", name="Enable Audit log").click()
    await expect(row).to_have_attribute("data-state", "enabled")
    await expect(row.locator(".endpoint-reason")).to_have_count(0)
    assert (await _endpoints(user, agent["id"]))[0]["disabled"] is False

    # Replay the last hour: the answer was delivered already, so nothing new is sent.
    await row.locator("summary", has_text="Recover and replay").click()
    await row.get_by_role("button", name="Replay").click()
    await expect(row.locator(".endpoint-recover-result")).to_contain_text("0 queued, 0 sent again, 1 already")
    await row.get_by_role("button", name="Re-send failed").click()
    await expect(row.locator(".endpoint-recover-result")).to_have_text("0 deliveries queued again.")

    # Delete.
    await row.get_by_role("button", name="Delete Audit log").click()
    await expect(row).to_have_count(0)
    assert await _endpoints(user, agent["id"]) == []
    await expect(lake).to_be_visible()


async def test_members_get_no_endpoint_controls(tab: Tab, user: Owner, stack: RunningStack) -> None:
    agent = await user.create_agent(name="shared-bot")
    made = await user.human.post(
        f"/api/v1/agents/{agent['id']}/endpoints", json={"url": "https://example.com/h"}
    )
    assert made.status_code == 201, made.text
    async with await stack.new_owner() as member:
        added = await user.human.post(f"/api/v1/agents/{agent['id']}/members", json={"email": member.email})
        assert added.status_code == 201, added.text
        await sign_in(tab.page, member, f"#/c/{agent['id']}/settings")
        await expect(tab.page.get_by_text("Only its owner manages it.")).to_be_visible()
        await expect(tab.page.locator('[data-section="endpoints"]')).to_have_count(0)
        await expect(tab.page.get_by_role("button", name="Add endpoint")).to_have_count(0)


async def _unavailable(_: web.Request, __: Received) -> web.StreamResponse:
    return web.Response(status=503)


async def _refuse(_: web.Request, __: Received) -> web.StreamResponse:
    return web.Response(status=400)


async def test_the_operator_page_has_a_row_per_endpoint(tab: Tab, user: Owner, receiver: Receiver) -> None:
    receiver.routes["/down"] = _unavailable
    receiver.routes["/refuse"] = _refuse
    agent = await user.create_agent(name="ops-bot")
    base = f"/api/v1/agents/{agent['id']}/endpoints"
    made = {}
    for name, path, extra in [
        ("Healthy", "/ok", {}),
        ("Down", "/down", {}),
        ("Refusing", "/refuse", {}),
        ("Paused", "/paused", {"disabled": True}),
    ]:
        resp = await user.human.post(base, json={"url": receiver.url(path), "description": name, **extra})
        assert resp.status_code == 201, resp.text
        made[name] = resp.json()["id"]
    # Ten answers: each endpoint but the paused one gets ten deliveries. /down answers 503 (the
    # breaker counts it; the deliveries wait for a retry), /refuse 400 (they fail at once; a
    # receiver that is up keeps its circuit closed).
    for _ in range(10):
        msg = await user.post_message(agent["id"], review=APPROVAL)
        assert (await user.respond(msg["id"], {"selectedOption": "approve"})).status_code == 200
    await receiver.wait_for("/ok", count=10)
    await receiver.wait_for("/down", count=10)
    await receiver.wait_for("/refuse", count=10)

    async def settled() -> dict[str, dict[str, Any]] | None:
        data = (await user.human.get("/api/v1/stats/overview")).json()
        rows = {e["description"]: e for e in data["endpoints"]}
        done = rows.get("Down", {}).get("open") and rows.get("Refusing", {}).get("failed") == 10
        return rows if done else None

    rows = await eventually(settled, timeout=30, what="the 503 endpoint's circuit open, 10 refused")
    got = {n: (e["pending"], e["failed"], e["open"], e["disabled"]) for n, e in rows.items()}
    assert got == {
        "Healthy": (0, 0, False, False),
        "Down": (10, 0, True, False),
        "Refusing": (0, 10, False, False),
        "Paused": (0, 0, False, True),
    }
    assert rows["Paused"]["disabledReason"] == "disabled by owner"
    assert [e["description"] for e in (await user.human.get("/api/v1/stats/overview")).json()["endpoints"]][
        :2
    ] == [
        "Down",
        "Paused",
    ]  # open circuits first, then disabled ones

    page = tab.page
    await sign_in(page, user, "#/ops")
    table = page.locator('[data-section="endpoints"]')
    down = table.locator(f'tr[data-endpoint-id="{made["Down"]}"]')
    await expect(down.locator('[data-stat="pending"]')).to_have_text("10")
    await expect(down.locator('[data-stat="circuit"]')).to_have_text("open")
    await expect(down).to_contain_text(receiver.url("/down"))
    refusing = table.locator(f'tr[data-endpoint-id="{made["Refusing"]}"]')
    await expect(refusing.locator('[data-stat="failed"]')).to_have_text("10")
    await expect(refusing.locator('[data-stat="circuit"]')).to_have_text("closed")
    paused = table.locator(f'tr[data-endpoint-id="{made["Paused"]}"]')
    await expect(paused.locator('[data-stat="state"]')).to_have_text("disabled disabled by owner")
    await expect(paused.get_by_role("link", name="ops-bot")).to_have_attribute(
        "href", f"#/c/{agent['id']}/settings"
    )
    healthy = table.locator(f'tr[data-endpoint-id="{made["Healthy"]}"]')
    await expect(healthy.locator('[data-stat="state"]')).to_have_text("enabled")


async def test_the_choices_are_the_servers(stack: RunningStack, user: Owner) -> None:
    """The form's lists come from the code that validates endpoints, so a type added there shows
    up in the inbox unchanged."""
    got = await user.agent.get("/api/v1/endpoints/choices")
    assert got.status_code == 200, got.text
    assert got.json() == {
        "eventTypes": list(ENDPOINT_EVENTS),
        "groups": groups(ENDPOINT_EVENTS),
        "defaultEventTypes": list(DEFAULT_ENDPOINT_EVENTS),
        "formats": list(ENDPOINT_FORMATS),
        "maxRateLimit": MAX_RATE_LIMIT,
        "maxEndpoints": MAX_ENDPOINTS,
    }
    async with stack.client() as anonymous:
        assert (await anonymous.get("/api/v1/endpoints/choices")).status_code == 401


async def test_the_endpoint_form_by_keyboard(tab: Tab, user: Owner, receiver: Receiver) -> None:
    """Open, fill and send the form with the keyboard alone; Escape closes it and gives focus
    back to the button that opened it."""
    agent = await user.create_agent(name="keys-bot")
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}/settings")
    section = page.locator('[data-section="endpoints"]')
    add = section.get_by_role("button", name="Add endpoint")
    await add.focus()
    await page.keyboard.press("Enter")
    form = section.get_by_role("form", name="New endpoint")
    await expect(form.get_by_label("URL")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(form).to_have_count(0)
    await expect(add).to_be_focused()

    await page.keyboard.press("Enter")
    await page.keyboard.type(receiver.url("/keys"))
    await page.keyboard.press("Tab")
    await expect(form.get_by_label("Description")).to_be_focused()
    await page.keyboard.type("Typed")
    await page.keyboard.press("Enter")  # submits the form
    await expect(section.locator(".endpoint-secret").get_by_role("button", name="Copy")).to_be_focused()
    await expect(section.locator(".endpoint .endpoint-name")).to_have_text("Typed")

    edit = section.get_by_role("button", name="Edit Typed")
    await edit.focus()
    await page.keyboard.press("Enter")
    await expect(section.get_by_role("form", name="Edit Typed").get_by_label("URL")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(edit).to_be_focused()


async def test_a_kafka_endpoint_shows_its_topic(tab: Tab, user: Owner) -> None:
    """A destination beyond HTTP is shown, and editing such an endpoint's other fields leaves it."""
    agent = await user.create_agent(name="topic-bot")
    made = await user.human.post(
        f"/api/v1/agents/{agent['id']}/endpoints",
        json={
            "destination": {"type": "kafka", "topic": "endpoints.inbox-test"},
            "description": "Review topic",
        },
    )
    assert made.status_code == 201, made.text
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}/settings")
    row = page.locator(f'[data-endpoint-id="{made.json()["id"]}"]')
    await expect(row.locator(".endpoint-facts")).to_contain_text(
        "Kafka topic endpoints.inbox-test on this cluster"
    )
    await row.get_by_role("button", name="Edit Review topic").click()
    edit = row.get_by_role("form", name="Edit Review topic")
    await expect(edit.get_by_label("URL")).to_have_attribute("readonly", "")
    await edit.get_by_label("Description").fill("Reviews to Kafka")
    await edit.get_by_role("checkbox", name="review:*").check()  # a group
    await edit.get_by_role("button", name="Save endpoint").click()
    await expect(row.locator(".endpoint-name")).to_have_text("Reviews to Kafka")
    [saved] = await _endpoints(user, agent["id"])
    assert saved["destination"]["topic"] == "endpoints.inbox-test"
    assert saved["description"] == "Reviews to Kafka"
    assert saved["eventTypes"] == ["review:responded", "review:expired", "review:*"]
    # Opened again, the group is ticked: saving without a change keeps it.
    await row.get_by_role("button", name="Edit Reviews to Kafka").click()
    again = row.get_by_role("form", name="Edit Reviews to Kafka")
    await expect(again.get_by_role("checkbox", name="review:*")).to_be_checked()
