"""Remembered approvals and risk in Chromium on the real stack (issue #29 items 3 and 4): "Approve,
and allow the same for 1 h" answers a tool call and approves the same call afterwards without a
person; the agent's settings list it and revoke it, and the audit page shows who granted it. The
risk a policy rule gives a review shows as its badge, and the risk filter is the API's (it finds a
review beyond the first page)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import expect

from tests.support.stack import Owner, eventually
from tests.web.conftest import Tab, sign_in

pytestmark = pytest.mark.slow

DEPLOY: dict[str, Any] = {"tool": "deploy", "args": {"env": "staging", "replicas": 2}}


async def test_approve_and_allow_for_an_hour_then_revoke(tab: Tab, user: Owner) -> None:
    agent = await user.create_agent(name="tools-bot")
    first = await user.post_message(
        agent["id"], text="Deploy staging?", review={"type": "approval"}, metadata=DEPLOY
    )
    plain = await user.post_message(agent["id"], text="No tool here", review={"type": "approval"})
    page = tab.page
    await sign_in(page, user)
    card = page.locator(f"#msg-{first['id']}")
    await expect(page.locator(f"#msg-{plain['id']} .btn-remember")).to_have_count(0)  # no metadata.tool
    await card.get_by_role("button", name="Approve, and allow the same for 1 h").click()
    await expect(card.locator(".review")).to_have_attribute("data-review-status", "completed")
    await expect(page.locator("#announcer")).to_contain_text("Approved, and allowed for 1 hour")

    # The same call again: approved without a person, by the remembered approval.
    again = await user.post_message(
        agent["id"], text="Deploy staging?", review={"type": "approval"}, metadata=DEPLOY
    )
    assert again["review"]["status"] == "completed"
    remembered_id = again["review"]["decidedBy"]["remembered"]
    # Other arguments are asked.
    other = {"tool": "deploy", "args": {"env": "production", "replicas": 2}}
    asked = await user.post_message(
        agent["id"], text="Deploy prod?", review={"type": "approval"}, metadata=other
    )
    assert asked["review"]["status"] == "pending"

    await page.goto(f"/#/c/{agent['id']}/settings")
    section = page.locator('[data-section="remembered"]')
    row = section.locator(f'tr[data-remembered-id="{remembered_id}"]')
    await expect(row).to_contain_text("deploy")
    await expect(row).to_contain_text("channel")
    await row.get_by_role("button", name="Revoke the approval of deploy").click()
    await expect(section.get_by_role("status")).to_contain_text("Revoked: deploy is asked again.")
    await expect(row).to_have_count(0)
    await expect(section.get_by_text("None: every tool call is asked")).to_be_visible()
    later = await user.post_message(
        agent["id"], text="Deploy staging?", review={"type": "approval"}, metadata=DEPLOY
    )
    assert later["review"]["status"] == "pending"

    # The channel's audit log says who granted the approval that answered, not "a policy".
    async def all_audited() -> bool:
        resp = await user.human.get("/api/v1/audit", params={"channelId": agent["id"]})
        assert resp.status_code == 200, resp.text
        kinds = [e["kind"] for e in resp.json()["data"]]
        return {"approval_remembered", "auto_decided", "approval_revoked"} <= set(kinds)

    await eventually(all_audited, what="the remembered approval in the audit log")
    await page.goto(f"/#/audit/{agent['id']}")
    used = page.locator('.audit-table tbody tr[data-kind="auto_decided"]')
    await expect(used).to_have_count(1)
    await expect(used).to_contain_text("Decided by a remembered approval")
    await expect(used).to_contain_text(user.email)
    for kind, text in (("approval_remembered", "Approval remembered"), ("approval_revoked", "revoked")):
        row = page.locator(f'.audit-table tbody tr[data-kind="{kind}"]')
        await expect(row).to_contain_text(text)
        await expect(row).to_contain_text(user.email)


async def test_a_rules_risk_shows_and_the_risk_filter_is_the_apis(tab: Tab, user: Owner) -> None:
    agent = await user.create_agent(name="risky-bot")
    rules = [{"match": {"metadata.tool": "rm"}, "action": "ask", "risk": "critical"}]
    saved = await user.agent.put(f"/api/v1/agents/{agent['id']}/policy", json={"rules": rules})
    assert saved.status_code == 200, saved.text
    # The oldest review is the critical one: the inbox's first page (newest 50) does not hold it.
    critical = await user.post_message(
        agent["id"], text="Remove the backups?", review={"type": "approval"}, metadata={"tool": "rm"}
    )
    assert critical["review"]["risk"] == "critical"
    for n in range(52):
        await user.post_message(agent["id"], text=f"Routine {n}?", review={"type": "approval"})
    page = tab.page
    await sign_in(page, user)
    await expect(page.locator(".inbox-list > article.msg")).to_have_count(50)
    await expect(page.locator(f"#msg-{critical['id']}")).to_have_count(0)
    tools = page.get_by_role("form", name="Filter and sort")
    await tools.get_by_label("Risk").select_option(label="Critical")
    card = page.locator(f"#msg-{critical['id']}")
    await expect(card).to_be_visible()
    await expect(card.locator(".risk")).to_have_text("Critical risk")
    await expect(page.locator(".inbox-list > article.msg:not([hidden])")).to_have_count(1)
    await expect(page.locator("#announcer")).to_contain_text(re.compile(r"\b1 review shown"))
