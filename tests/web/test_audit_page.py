"""The audit page in Chromium on the real stack (issue #29 items 7 and 9): every decision and
policy change listed newest first, filtered by kind, decision and channel, paged with "Load
more", and exported as CSV and JSON Lines through the session's token."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.support.stack import Owner, eventually
from tests.web.conftest import Tab, sign_in

pytestmark = pytest.mark.slow

AUTO = 52  # more than the page's 50: the second page comes from "Load more"


async def audit_count(owner: Owner, **params: str) -> int:
    resp = await owner.human.get("/api/v1/audit", params={"limit": "500", **params})
    assert resp.status_code == 200, resp.text
    return len(resp.json()["data"])


def rows(page: Page, kind: str | None = None) -> object:
    selector = ".audit-table tbody tr" + (f'[data-kind="{kind}"]' if kind else "")
    return page.locator(selector)


async def test_audit_page_filters_pages_and_exports(tab: Tab, user: Owner, tmp_path: Path) -> None:
    auto = await user.create_agent(name="auto-bot")
    people = await user.create_agent(name="people-bot")
    saved = await user.agent.put(
        f"/api/v1/agents/{auto['id']}/policy", json={"rules": [{"match": {}, "action": "approve"}]}
    )
    assert saved.status_code == 200, saved.text
    for n in range(AUTO):
        await user.post_message(auto["id"], text=f"Routine {n}?", review={"type": "approval"})
    yes = await user.post_message(people["id"], text="Ship it?", review={"type": "approval"})
    no = await user.post_message(people["id"], text="Drop it?", review={"type": "approval"})
    assert (await user.respond(yes["id"], {"selectedOption": "approve"})).status_code == 200
    assert (await user.respond(no["id"], {"selectedOption": "reject"})).status_code == 200
    total = AUTO + 3  # the decisions and the policy's save

    async def all_stored() -> bool:
        return await audit_count(user) >= total

    await eventually(all_stored, 30, "every decision in the audit log")

    page = tab.page
    await sign_in(page, user, "#/audit")
    table = page.locator(".audit-table tbody tr")
    await expect(table).to_have_count(50)
    await page.get_by_role("button", name="Load more").click()
    await expect(table).to_have_count(total)
    await expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    # Newest first: the people's answers, then the policy's decisions, the policy's save last.
    await expect(table.first).to_have_attribute("data-kind", "answered")
    await expect(table.last).to_have_attribute("data-kind", "policy_changed")
    await expect(page.locator('.audit-table tr[data-kind="answered"]').first).to_contain_text(user.email)

    filters = page.get_by_role("form", name="Audit filters")
    await filters.get_by_label("Kind").select_option("answered")
    await filters.get_by_role("button", name="Show").click()
    await expect(table).to_have_count(2)
    await filters.get_by_label("Decision").fill("reject")
    await filters.get_by_role("button", name="Show").click()
    await expect(table).to_have_count(1)
    await expect(table.first).to_contain_text("people-bot")
    await filters.get_by_label("Decision").fill("")
    await filters.get_by_label("Kind").select_option("")
    await filters.get_by_label("Channel").select_option(label="people-bot")
    await filters.get_by_role("button", name="Show").click()
    await expect(table).to_have_count(2)

    # The export sends the same filters, with the session's token.
    async with page.expect_download() as info:
        await page.get_by_role("button", name="Export CSV").click()
    csv_path = tmp_path / "audit.csv"
    await (await info.value).save_as(csv_path)
    lines = csv_path.read_text().strip().splitlines()
    assert lines[0].startswith("id,at,channelId,messageId,kind")
    assert len(lines) == 3, lines
    async with page.expect_download() as info:
        await page.get_by_role("button", name="Export JSON Lines").click()
    jsonl_path = tmp_path / "audit.jsonl"
    await (await info.value).save_as(jsonl_path)
    entries = [json.loads(line) for line in jsonl_path.read_text().splitlines() if line]
    assert {e["messageId"] for e in entries} == {yes["id"], no["id"]}

    # From a channel's settings: the audit page opens filtered to it.
    await page.goto(f"/#/c/{auto['id']}/settings")
    await page.get_by_role("link", name="This channel's audit log").click()
    await expect(page).to_have_url(re.compile(f"#/audit/{auto['id']}$"))
    await expect(page.get_by_role("form", name="Audit filters").get_by_label("Channel")).to_have_value(
        auto["id"]
    )
    await expect(table).to_have_count(50)
    await expect(page.locator('.audit-table tr[data-kind="answered"]')).to_have_count(0)


async def test_a_bulk_answer_is_one_audit_entry_per_review(tab: Tab, user: Owner) -> None:
    agent = await user.create_agent(name="bulk-audit-bot")
    ids = [
        (await user.post_message(agent["id"], text=f"Batch {n}?", review={"type": "approval"}))["id"]
        for n in range(3)
    ]
    page = tab.page
    await sign_in(page, user)
    await expect(page.locator(f"#msg-{ids[2]}")).to_be_visible()
    await page.get_by_role("button", name="Select all shown").click()
    await page.get_by_role("button", name="Approve selected").click()
    await expect(page.locator("#announcer")).to_contain_text("Approved 3 of 3")

    async def answered() -> list[dict[str, object]] | None:
        resp = await user.human.get("/api/v1/audit", params={"channelId": agent["id"], "kind": "answered"})
        found: list[dict[str, object]] = resp.json()["data"]
        return found if len(found) >= 3 else None

    entries = await eventually(answered, 30, "the three answers in the audit log")
    assert sorted(str(e["messageId"]) for e in entries) == sorted(ids)
    assert {(e["decision"], e["actor"]["id"]) for e in entries} == {("approve", user.user_id)}  # type: ignore[index]
    assert len({e["id"] for e in entries}) == 3
