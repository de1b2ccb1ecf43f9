"""The inbox at fleet volume and the policy editor, in Chromium on the real stack (issue #29 items
3, 8 and 9): a channel's policy edited, saved as a new version, tried in the dry run and refused
with the API's error under the field it names; the inbox's filters and sorts; a bulk approval in
which one review was answered elsewhere first (its 409 on its own card, the others approved, each
its own decision); the same by keyboard."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Locator, Page, Route, expect

from tests.support.stack import Owner
from tests.web.conftest import Tab, sign_in

pytestmark = pytest.mark.slow

APPROVAL: dict[str, Any] = {"type": "approval"}


async def stored(owner: Owner, message_id: str) -> dict[str, Any]:
    resp = await owner.agent.get(f"/api/v1/reviews/{message_id}")
    assert resp.status_code == 200, resp.text
    review: dict[str, Any] = resp.json()["review"]
    return review


def policy_of(page: Page) -> Locator:
    return page.locator('[data-section="policy"]')


async def shown_ids(page: Page) -> list[str]:
    """The ids of the inbox cards on screen, top to bottom."""
    ids: list[str] = await page.eval_on_selector_all(
        ".inbox-list > article.msg:not([hidden])", "els => els.map(e => e.dataset.messageId)"
    )
    return ids


async def test_policy_editor_saves_tests_and_shows_errors(tab: Tab, user: Owner) -> None:
    agent = await user.create_agent(name="deploy-bot")
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}/settings")
    policy = policy_of(page)
    await expect(policy.locator(".policy-version")).to_have_text("No policy saved yet.")

    await policy.get_by_role("button", name="Add rule").click()
    rule = policy.locator("fieldset.rule").nth(0)
    await expect(rule.get_by_label("Name (optional)")).to_be_focused()
    await rule.get_by_label("Name (optional)").fill("staging deploys")
    await rule.get_by_label("Match (JSON filter)").fill(
        '{"metadata.tool": "deploy", "metadata.args.env": "staging"}'
    )
    await rule.get_by_label("Action").select_option("approve")
    await rule.get_by_label("Response (JSON)").fill(
        '{"selectedOption": "approve", "comment": "staging is fine"}'
    )
    await rule.get_by_label("Risk").select_option("low")
    await policy.get_by_role("button", name="Add rule").click()
    second = policy.locator("fieldset.rule").nth(1)
    await second.get_by_label("Name (optional)").fill("no drops")
    await second.get_by_label("Match (JSON filter)").fill('{"text": {"$regex": "DROP TABLE"}}')
    await second.get_by_label("Action").select_option("reject")
    await policy.get_by_role("button", name="Save policy").click()
    await expect(policy.get_by_role("status").filter(has_text="Saved: version 1.")).to_be_visible()
    saved = (await user.agent.get(f"/api/v1/agents/{agent['id']}/policy")).json()
    assert saved["version"] == 1
    assert [r.get("name") for r in saved["rules"]] == ["staging deploys", "no drops"]
    assert saved["rules"][0]["response"] == {"selectedOption": "approve", "comment": "staging is fine"}
    assert (saved["rules"][0]["risk"], saved["rules"][1]["action"]) == ("low", "reject")

    # The dry run with the sample message as it comes: staging, so rule 1 approves.
    dry = policy.locator("form.dry-run")
    await dry.get_by_role("button", name="Test").click()
    outcome = dry.locator(".dry-outcome")
    await expect(outcome).to_have_attribute("data-action", "approve")
    await expect(outcome).to_contain_text("rule 1 (“staging deploys”) of the channel policy, version 1")
    await expect(outcome).to_contain_text("staging is fine")
    await dry.get_by_label("Metadata (JSON)").fill('{"tool": "deploy", "args": {"env": "production"}}')
    await dry.get_by_label("Message text").fill("DROP TABLE users")
    await dry.get_by_role("button", name="Test").click()
    await expect(outcome).to_have_attribute("data-action", "reject")
    await expect(outcome).to_contain_text("rule 2")
    await dry.get_by_label("Message text").fill("Deploy to production?")
    await dry.get_by_role("button", name="Test").click()
    await expect(outcome).to_have_attribute("data-action", "ask")
    await expect(outcome).to_contain_text("no rule matches")
    # JSON that does not parse is refused here, at its field.
    await dry.get_by_label("Metadata (JSON)").fill("{tool: deploy}")
    await dry.get_by_role("button", name="Test").click()
    await expect(dry.get_by_label("Metadata (JSON)")).to_have_attribute("aria-invalid", "true")
    await expect(dry.get_by_label("Metadata (JSON)")).to_be_focused()

    # An operator the filter language lacks: the API's 422 shows under rule 2's Match, named.
    await second.get_by_label("Match (JSON filter)").fill('{"metadata.args.amount": {"$gtx": 5}}')
    await policy.get_by_role("button", name="Save policy").click()
    match = second.get_by_label("Match (JSON filter)")
    await expect(match).to_have_attribute("aria-invalid", "true")
    await expect(match).to_be_focused()
    error = second.locator(".field-error:not([hidden])")
    await expect(error).to_have_count(1)
    await expect(error).to_contain_text("metadata.args.amount.$gtx")
    await expect(rule.locator(".field-error:not([hidden])")).to_have_count(0)
    assert (await user.agent.get(f"/api/v1/agents/{agent['id']}/policy")).json()["version"] == 1
    # A response that cannot fit the review type it pins: at the rule's Response field.
    await second.get_by_label("Match (JSON filter)").fill('{"review.type": "approval"}')
    await second.get_by_label("Response (JSON)").fill('{"selectedIds": ["a"]}')
    await policy.get_by_role("button", name="Save policy").click()
    response = second.get_by_label("Response (JSON)")
    await expect(response).to_have_attribute("aria-invalid", "true")
    await expect(second.locator(".field-error:not([hidden])")).to_contain_text("selectedIds")

    # Version 1 loads back into the editor from the list of versions.
    await policy.locator("summary", has_text="Earlier versions").click()
    await policy.get_by_role("button", name="Load version 1 into the editor").click()
    restored = policy.locator("fieldset.rule").nth(1)  # a new editor: no error left on it
    await expect(restored.get_by_label("Match (JSON filter)")).to_have_value(re.compile("DROP TABLE"))
    await expect(restored.get_by_label("Action")).to_have_value("reject")
    await expect(policy.locator(".rules .field-error:not([hidden])")).to_have_count(0)
    await expect(page.locator("#announcer")).to_contain_text("Version 1 loaded into the editor")


async def test_a_rule_that_cannot_answer_says_why_on_the_card(tab: Tab, user: Owner) -> None:
    agent = await user.create_agent(name="labels-bot")
    rules = [
        {"match": {"review.type": "selection"}, "action": "approve", "response": {"selectedIds": ["zz"]}}
    ]
    resp = await user.agent.put(f"/api/v1/agents/{agent['id']}/policy", json={"rules": rules})
    assert resp.status_code == 200, resp.text
    review = {"type": "selection", "payload": {"items": [{"id": "a", "label": "A"}]}}
    msg = await user.post_message(agent["id"], text="Which label?", review=review)
    assert "unknown option id 'zz'" in msg["review"]["policyFallback"]["reason"]
    page = tab.page
    await sign_in(page, user)
    note = page.locator(f"#msg-{msg['id']} .policy-note")
    await expect(note).to_contain_text("A policy rule matched but could not answer")
    await expect(note).to_contain_text("unknown option id 'zz'")


async def test_filters_and_sorts(tab: Tab, user: Owner) -> None:
    ops = await user.create_agent(name="ops-bot")
    data = await user.create_agent(name="data-bot")
    low = await user.post_message(
        ops["id"], text="Restart a worker?", review=APPROVAL, metadata={"risk": "low"}
    )
    critical = await user.post_message(
        ops["id"], text="Drop the old table?", review=APPROVAL, metadata={"risk": "critical"}
    )
    pick = await user.post_message(
        data["id"],
        text="Which region?",
        review={"type": "selection", "payload": {"items": [{"id": "eu", "label": "EU"}]}},
        metadata={"risk": "high"},
    )
    soon = await user.post_message(
        data["id"], text="Soon due?", review={"type": "approval", "expiresInSeconds": 3600}
    )
    page = tab.page
    await sign_in(page, user)
    everything = [low["id"], critical["id"], pick["id"], soon["id"]]
    await expect(page.locator(".inbox-list > article.msg")).to_have_count(4)
    assert await shown_ids(page) == everything  # oldest first
    await expect(page.locator(f"#msg-{critical['id']} .risk")).to_have_text("Critical risk")
    await expect(page.locator(f"#msg-{pick['id']} .risk")).to_have_attribute("data-risk", "high")

    tools = page.get_by_role("form", name="Filter and sort")
    await tools.get_by_label("Channel").select_option(label="data-bot")
    await expect(page.locator(".inbox-list > article.msg:not([hidden])")).to_have_count(2)
    assert await shown_ids(page) == [pick["id"], soon["id"]]
    # A new review of another channel arrives live and stays out of sight.
    other = await user.post_message(ops["id"], text="Another ops question?", review=APPROVAL)
    await expect(page.locator(f"#msg-{other['id']}")).to_be_attached()
    await expect(page.locator(f"#msg-{other['id']}")).to_be_hidden()
    await tools.get_by_label("Channel").select_option(label="All channels")
    await tools.get_by_label("Review type").select_option(label="Selection")
    await expect(page.locator(".inbox-list > article.msg:not([hidden])")).to_have_count(1)
    assert await shown_ids(page) == [pick["id"]]
    await tools.get_by_label("Review type").select_option("")
    await tools.get_by_label("Risk").select_option(label="High and above")
    await expect(page.locator(".inbox-list > article.msg:not([hidden])")).to_have_count(2)
    assert await shown_ids(page) == [critical["id"], pick["id"]]
    await tools.get_by_label("Risk").select_option("")

    await tools.get_by_label("Sort").select_option(label="Risk, highest first")
    await expect(page.locator(".inbox-list > article.msg:not([hidden])").first).to_have_id(
        f"msg-{critical['id']}"
    )
    assert await shown_ids(page) == [critical["id"], pick["id"], low["id"], soon["id"], other["id"]]
    await tools.get_by_label("Sort").select_option(label="Deadline, soonest first")
    await expect(page.locator(".inbox-list > article.msg:not([hidden])").first).to_have_id(
        f"msg-{soon['id']}"
    )
    await tools.get_by_label("Sort").select_option(label="Newest first")
    await expect(page.locator(".inbox-list > article.msg:not([hidden])").first).to_have_id(
        f"msg-{other['id']}"
    )
    assert await shown_ids(page) == [other["id"], *reversed(everything)]

    # Nothing has waited an hour yet.
    await tools.get_by_label("Waiting").select_option(label="Older than 1 hour")
    await expect(page.locator(".inbox-list > article.msg:not([hidden])")).to_have_count(0)
    await expect(page.get_by_text("No review matches these filters.")).to_be_visible()
    await expect(page.locator("#announcer")).to_contain_text("0 reviews shown")


async def test_bulk_approve_with_one_answered_elsewhere(tab: Tab, user: Owner) -> None:
    agent = await user.create_agent(name="batch-bot")
    ids = [
        (await user.post_message(agent["id"], text=f"Run batch job {n}?", review=APPROVAL))["id"]
        for n in range(5)
    ]
    page = tab.page
    await sign_in(page, user)
    cards = [page.locator(f"#msg-{i}") for i in ids]
    await expect(cards[4]).to_be_visible()
    # Tick the first, shift-click the fourth: the four in between are selected.
    await cards[0].get_by_role("checkbox", name=re.compile("^Select")).click()
    await cards[3].get_by_role("checkbox", name=re.compile("^Select")).click(modifiers=["Shift"])
    bar = page.get_by_role("group", name="Answer several")
    await expect(bar.locator(".bulk-count")).to_have_text("4 selected")
    for card in cards[:4]:
        await expect(card).to_have_class(re.compile("is-selected"))
    await expect(cards[4].get_by_role("checkbox")).not_to_be_checked()
    # Someone else rejects the second one just before this page's answer to it reaches the API.
    elsewhere: list[int] = []

    async def answered_first(route: Route) -> None:
        elsewhere.append(
            (await user.respond(ids[1], {"selectedOption": "reject", "comment": "not now"})).status_code
        )
        await route.continue_()

    await page.route(f"**/api/v1/reviews/{ids[1]}/respond", answered_first)
    await bar.get_by_role("button", name="Approve selected").click()
    await expect(page.locator("#announcer")).to_contain_text("Approved 3 of 4. 1 not saved")
    for i in (0, 2, 3):
        await expect(cards[i].locator(".review")).to_have_attribute("data-review-status", "completed")
        await expect(cards[i].locator(".note")).to_have_count(0)
    await expect(cards[1].locator(".note")).to_contain_text("Not saved")
    await expect(cards[1].locator(".review .chip")).to_have_text("Reject")
    await expect(cards[4].locator(".review")).to_have_attribute("data-review-status", "pending")
    await expect(bar.locator(".bulk-count")).to_have_text("0 selected")
    assert elsewhere == [200]
    # Each its own decision: its own answer, by this user, at its own time.
    for i in (0, 2, 3):
        review = await stored(user, ids[i])
        assert review["status"] == "completed"
        assert review["response"] == {"selectedOption": "approve"}
        assert review["respondedBy"] == user.user_id
    assert (await stored(user, ids[1]))["response"] == {"selectedOption": "reject", "comment": "not now"}
    assert (await stored(user, ids[4]))["status"] == "pending"


async def test_bulk_answer_by_keyboard(tab: Tab, user: Owner) -> None:
    agent = await user.create_agent(name="keys-bot")
    ids = [
        (await user.post_message(agent["id"], text=f"Clean cache {n}?", review=APPROVAL))["id"]
        for n in range(4)
    ]
    text = await user.post_message(agent["id"], text="Name it", review={"type": "text-input"})
    page = tab.page
    await sign_in(page, user)
    cards = [page.locator(f"#msg-{i}") for i in ids]
    await expect(page.locator(f"#msg-{text['id']}")).to_be_visible()
    await page.locator("#main").focus()
    keys = page.keyboard
    await keys.press("j")
    await expect(cards[0]).to_be_focused()
    await keys.press("x")
    await keys.press("j")
    await keys.press("j")
    await keys.press("Shift+X")  # the range from the first to the third
    bar = page.get_by_role("group", name="Answer several")
    await expect(bar.locator(".bulk-count")).to_have_text("3 selected")
    await keys.press("j")
    await keys.press("j")
    await expect(page.locator(f"#msg-{text['id']}")).to_be_focused()
    await keys.press("x")  # a text answer is nobody's bulk answer
    await expect(page.locator("#announcer")).to_contain_text("This card cannot be answered with others")
    await keys.press("Shift+R")
    await expect(page.locator("#announcer")).to_contain_text("Rejected 3 of 3")
    for i in range(3):
        await expect(cards[i].locator(".review")).to_have_attribute("data-review-status", "completed")
        assert (await stored(user, ids[i]))["response"] == {"selectedOption": "reject"}
    assert (await stored(user, ids[3]))["status"] == "pending"
    await expect(page.locator(f"#msg-{text['id']}")).to_be_focused()

    # The shortcuts help lists them.
    await keys.press("?")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    await expect(dialog.get_by_role("row", name="x Select or unselect the current card")).to_be_visible()
    await expect(
        dialog.get_by_role("row", name=re.compile("Shift\\+A Approve the selected cards"))
    ).to_be_visible()
