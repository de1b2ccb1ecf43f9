"""Screenshots of the main views, from a small but realistic set of channels.

They go to a temporary directory on every run (so the views are rendered and checked), and to
``docs/`` when ``SAYSO_SCREENSHOTS=docs`` is set:

    SAYSO_SCREENSHOTS=docs uv run pytest tests/web/test_screenshots.py
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, Dialog, Page, expect

from tests.support.receiver import Received, Receiver
from tests.support.stack import Owner, RunningStack
from tests.web.conftest import TIMEOUT_MS, sign_in

pytestmark = pytest.mark.slow

DOCS = Path(__file__).resolve().parents[2] / "docs"


async def _refuse(_: web.Request, __: Received) -> web.StreamResponse:
    return web.json_response({"error": "maintenance"}, status=503)


@pytest.fixture
async def failing() -> AsyncIterator[Receiver]:
    rec = await Receiver().start()
    rec.routes["/hook"] = _refuse
    yield rec
    await rec.stop()


async def populate(owner: Owner, receiver: Receiver, failing: Receiver) -> dict[str, str]:
    deploy = await owner.create_agent(
        name="deploy-bot", description="Ships releases", webhookUrl=receiver.url("/deploy")
    )
    reports = await owner.create_agent(name="report-writer", webhookUrl=receiver.url("/reports"))
    sync = await owner.create_agent(
        name="data-sync", webhookUrl=failing.url("/hook"), webhookRetrySchedule=[]
    )
    for agent, status, note in (
        (deploy, "active", None),
        (reports, "busy", "Drafting Q3"),
        (sync, "error", "DB timeout"),
    ):
        await owner.agent.post(
            "/api/v1/status/ping", json={"agentId": agent["id"], "status": status, "message": note}
        )

    d = deploy["id"]
    for path, body in (
        (f"/api/v1/agents/{d}/endpoints", {"url": receiver.url("/audit"), "description": "Audit service",
                                           "eventTypes": ["review:responded"], "format": "standard",
                                           "filter": {"message.metadata.env": "production"}, "rateLimit": 20}),
    ):  # fmt: skip
        made = await owner.human.post(path, json=body)
        assert made.status_code == 201, made.text
    await owner.post_message(
        d, text="Build **#1482** finished: 214 tests passed, image `api:2.4.1` pushed.", status="success"
    )
    done = await owner.post_message(
        d,
        text="Which regions should get the canary?",
        review={
            "type": "selection",
            "payload": {
                "multiple": True,
                "options": [
                    {"id": "eu", "label": "Europe", "description": "Frankfurt, Dublin"},
                    {"id": "us", "label": "US East"},
                    {"id": "ap", "label": "Asia Pacific"},
                ],
            },
        },
    )
    await owner.respond(done["id"], {"selectedIds": ["eu", "us"]})
    await owner.human.post(
        "/api/v1/messages/user", json={"channelId": d, "text": "Canary looks healthy, go ahead."}
    )
    await owner.post_message(
        d,
        text="Deploy **v2.4.1** to production?\n\nChangelog: [release notes](https://example.com/releases/2.4.1)",
        status="warning",
        metadata={"risk": "high", "tool": "deploy", "args": {"env": "production"}},
        review={
            "type": "approval",
            "payload": {
                "options": [
                    {"id": "deploy", "label": "Deploy", "style": "success"},
                    {"id": "later", "label": "Tonight", "style": "secondary"},
                    {"id": "abort", "label": "Abort", "style": "danger"},
                ]
            },
        },
    )
    await owner.post_message(
        d,
        text="Fill in the change record for the CAB.",
        review={
            "type": "form",
            "payload": {
                "fields": [
                    {
                        "name": "ticket",
                        "label": "Change ticket",
                        "type": "text",
                        "required": True,
                        "placeholder": "CHG-1234",
                    },
                    {
                        "name": "risk",
                        "label": "Risk",
                        "type": "select",
                        "required": True,
                        "options": [{"id": "low", "label": "Low"}, {"id": "high", "label": "High"}],
                    },
                    {"name": "window", "label": "Window (minutes)", "type": "number", "min": 5, "max": 120},
                    {"name": "notify", "label": "Notify customers", "type": "checkbox"},
                ]
            },
        },
    )

    r = reports["id"]
    await owner.post_message(
        r,
        text="Q3 summary draft is ready.",
        review={"type": "text-input", "payload": {"placeholder": "Title for the report", "maxLength": 80}},
    )
    await owner.post_message(
        r,
        text="Adjust the chart config if needed.",
        review={"type": "freeform", "payload": {"chart": "bar", "series": ["revenue", "costs"]}},
    )

    for i in range(3):
        m = await owner.post_message(
            sync["id"],
            text=f"Sync batch {i + 1} needs a decision",
            review={"type": "approval", "payload": {}},
        )
        await owner.respond(m["id"], {"selectedOption": "approve"})
    for i in range(4):
        m = await owner.post_message(
            r, text=f"Section {i + 1} approved?", review={"type": "approval", "payload": {}}
        )
        await owner.respond(m["id"], {"selectedOption": "approve"})
    # Two routine approvals waiting, with their risk: the inbox's bulk answer and its badges.
    for i, risk in enumerate(("low", "medium")):
        await owner.post_message(
            r, text=f"Publish section {i + 5}?", review={"type": "approval"}, metadata={"risk": risk}
        )
    await failing.wait_for("/hook", count=3)
    await receiver.wait_for("/reports", count=4)
    return {"deploy": d, "reports": r, "sync": sync["id"]}


async def shot(page: Page, out: Path, name: str) -> Path:
    path = out / f"{name}.png"
    await page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000, f"{name} looks empty"
    return path


async def accept(dialog: Dialog) -> None:
    await dialog.accept()


async def test_screenshots(
    browser: Browser,
    stack: RunningStack,
    user: Owner,
    receiver: Receiver,
    failing: Receiver,
    tmp_path: Path,
) -> None:
    out = DOCS if os.environ.get("SAYSO_SCREENSHOTS") == "docs" else tmp_path
    ids = await populate(user, receiver, failing)
    context = await browser.new_context(
        base_url=stack.url, viewport={"width": 1280, "height": 860}, color_scheme="light"
    )
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = await context.new_page()
        page.on("dialog", accept)
        await sign_in(page, user, f"#/c/{ids['deploy']}")
        await expect(page.locator("article.msg")).to_have_count(5)
        await page.set_viewport_size({"width": 1280, "height": 1250})  # the whole conversation
        await page.locator("article.msg").last.scroll_into_view_if_needed()
        await shot(page, out, "web-channel")
        await page.set_viewport_size({"width": 1280, "height": 860})

        await page.goto("/#/inbox")
        await expect(page.locator("article.msg")).to_have_count(6)
        await page.get_by_label("Sort", exact=True).select_option(label="Risk, highest first")
        for box in await page.get_by_role("checkbox", name=re.compile("^Select: Publish section")).all():
            await box.check()
        await expect(page.locator(".bulk-count")).to_have_text("2 selected")
        await shot(page, out, "web-inbox")

        await page.goto(f"/#/c/{ids['sync']}")
        failed = page.locator("article.msg").last
        await failed.get_by_role("button", name="Deliveries").click()
        await expect(failed.locator(".delivery")).to_have_attribute("data-state", "failed")
        await failed.locator(".deliveries").scroll_into_view_if_needed()
        await shot(page, out, "web-deliveries")

        await page.goto(f"/#/c/{ids['deploy']}/settings")
        await page.get_by_role("form", name="New inbound webhook").get_by_label("Name").fill("CI pipeline")
        await page.get_by_role("button", name="Create webhook URL").click()
        await expect(page.locator(".secret-box")).to_be_visible()
        await page.get_by_role("button", name="Send test event").click()
        await expect(page.locator(".test-result")).to_contain_text("Delivered")
        await page.locator(".secret-box").scroll_into_view_if_needed()
        await shot(page, out, "web-settings")

        # A new endpoint: its signing secret shown once, above the channel's list.
        endpoints = page.locator('[data-section="endpoints"]')
        await endpoints.get_by_role("button", name="Add endpoint").click()
        form = endpoints.get_by_role("form", name="New endpoint")
        await form.get_by_label("URL").fill("https://hooks.example.com/compliance")
        await form.get_by_label("Description").fill("Compliance archive")
        await form.get_by_role("button", name="Create endpoint").click()
        await expect(endpoints.locator(".secret-box")).to_be_visible()
        await expect(endpoints.locator(".endpoint")).to_have_count(2)
        await page.set_viewport_size({"width": 1280, "height": 1300})
        await endpoints.evaluate(
            "el => { const sc = el.closest('.scroller');"
            " sc.scrollTop += el.getBoundingClientRect().top - sc.getBoundingClientRect().top - 12; }"
        )
        await shot(page, out, "web-endpoints")
        await page.set_viewport_size({"width": 1280, "height": 860})

        # A policy for the deploy channel, shown in its editor with a dry run.
        rules = [
            {
                "name": "never drop tables",
                "match": {"text": {"$regex": "drop\\s+table", "$options": "i"}},
                "action": "reject",
                "risk": "critical",
            },
            {
                "name": "staging deploys",
                "match": {"metadata.tool": "deploy", "metadata.args.env": "staging"},
                "action": "approve",
                "risk": "low",
            },
        ]
        saved = await user.agent.put(f"/api/v1/agents/{ids['deploy']}/policy", json={"rules": rules})
        assert saved.status_code == 200, saved.text
        await page.reload()  # the settings page is open: read the policy again
        policy = page.locator('[data-section="policy"]')
        await expect(policy.locator("fieldset.rule")).to_have_count(2)
        await policy.get_by_role("button", name="Test").click()
        await expect(policy.locator(".dry-outcome")).to_have_attribute("data-action", "approve")
        await page.set_viewport_size({"width": 1280, "height": 1500})
        # The page's own scroller, not the document (which would push the top bar away).
        await policy.evaluate(
            "el => { const sc = el.closest('.scroller');"
            " sc.scrollTop += el.getBoundingClientRect().top - sc.getBoundingClientRect().top - 12; }"
        )
        await shot(page, out, "web-policy")
        await page.set_viewport_size({"width": 1280, "height": 860})

        await page.goto("/#/ops")
        await expect(page.locator('[data-stat="failed-deliveries"] .tile-value')).to_have_text("3")
        await expect(page.locator(".chart-svg rect.bar-fail")).not_to_have_count(0)
        await shot(page, out, "web-operator")

        await page.set_viewport_size({"width": 390, "height": 844})
        await page.goto(f"/#/c/{ids['deploy']}")
        await expect(page.locator("article.msg")).to_have_count(5)
        await page.locator("article.msg").nth(3).scroll_into_view_if_needed()
        await shot(page, out, "web-phone")
    finally:
        await context.close()
