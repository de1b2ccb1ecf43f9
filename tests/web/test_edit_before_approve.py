"""Edit before approve in the inbox (issue #32): a review offering its action for editing shows a
form drawn from a flat schema (or a JSON editor for any other), lists what changed, shows the
API's refusal at the field, and an approval sends the edited arguments, which the agent's
long-poll receives."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import expect

from tests.support.stack import Owner
from tests.web.conftest import Tab, sign_in

pytestmark = pytest.mark.slow

FLAT: dict[str, Any] = {
    "type": "approval",
    "payload": {
        "edit": {
            "args": {"to": "alice", "amount": 120, "currency": "EUR", "express": False},
            "schema": {
                "type": "object",
                "properties": {
                    "to": {"type": "string", "title": "Recipient"},
                    "amount": {"type": "number", "minimum": 1, "maximum": 500, "description": "At most 500"},
                    "currency": {"enum": ["EUR", "USD"]},
                    "express": {"type": "boolean"},
                },
                "required": ["to", "amount", "currency"],
            },
        }
    },
}
NESTED: dict[str, Any] = {
    "type": "approval",
    "payload": {
        "edit": {
            "args": {"tables": ["users"], "options": {"cascade": True}},
            "schema": {"type": "object", "properties": {"tables": {"type": "array"}}},
        }
    },
}


async def wait_for_answer(owner: Owner, message_id: str, channel: str) -> dict[str, Any]:
    """The agent's side: long-poll until the review completes (bounded)."""
    for _ in range(10):
        resp = await owner.agent.get(
            f"/api/v1/reviews/{message_id}/wait", params={"channel": channel, "timeout": 30000}
        )
        assert resp.status_code == 200, resp.text
        if resp.json()["status"] == "completed":
            message: dict[str, Any] = resp.json()["message"]
            return message
    raise AssertionError("the review was never answered")


async def test_edit_a_field_see_the_diff_and_approve(tab: Tab, user: Owner) -> None:
    agent = await user.create_agent(name="payments-bot")
    msg = await user.post_message(agent["id"], text="Pay alice?", review=FLAT)
    agent_waits = asyncio.create_task(wait_for_answer(user, msg["id"], agent["id"]))
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}")
    card = page.locator(f"#msg-{msg['id']}")
    amount = card.get_by_label("amount")
    await expect(amount).to_have_value("120")
    await expect(amount).to_have_attribute("aria-required", "true")
    await expect(card.get_by_label("Recipient")).to_have_value("alice")
    await expect(card.get_by_label("currency")).to_have_js_property("tagName", "SELECT")
    await expect(card.locator(".edit-diff-none")).to_be_visible()

    # Beyond the schema's maximum: the API's 422 shows at the field.
    await amount.fill("900")
    await expect(card.locator(".edit-diff li[data-key=amount]")).to_have_text("amount: 120 → 900")
    await card.get_by_role("button", name="Approve").click()
    error = card.locator(".field-error:not([hidden])")
    await expect(error).to_contain_text("900")
    await expect(amount).to_have_attribute("aria-invalid", "true")
    await expect(amount).to_be_focused()

    await amount.fill("90")
    await card.get_by_label("currency").select_option(label="USD")
    diff = card.locator(".edit-diff li")
    await expect(diff).to_have_count(2)
    await expect(card.locator(".edit-diff li[data-key=amount]")).to_have_text("amount: 120 → 90")
    await expect(card.locator(".edit-diff li[data-key=currency]")).to_have_text("currency: EUR → USD")
    await card.get_by_role("button", name="Approve").click()
    await expect(card.locator(".review")).to_have_attribute("data-review-status", "completed")
    await expect(card.locator(".answer")).to_contain_text("with edited arguments")
    await expect(card.locator(".answer .edit-diff li")).to_have_count(2)
    await expect(page.locator("#announcer p").last).to_have_text("Approved with edited arguments")

    answered = await asyncio.wait_for(agent_waits, 60)
    assert answered["review"]["response"] == {
        "selectedOption": "approve",
        "editedArgs": {"to": "alice", "amount": 90, "currency": "USD", "express": False},
    }


async def test_json_editor_approve_unchanged_and_reject_edited(tab: Tab, user: Owner) -> None:
    """A schema a form cannot show gets the JSON editor; approving without a change sends no
    editedArgs, and a rejection never sends them even after an edit."""
    agent = await user.create_agent(name="db-bot")
    unchanged = await user.post_message(agent["id"], text="Drop users?", review=NESTED)
    rejected = await user.post_message(agent["id"], text="Drop orders?", review=NESTED)
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}")

    card = page.locator(f"#msg-{unchanged['id']}")
    editor = card.get_by_label("Arguments (JSON)")
    await expect(editor).to_have_value(
        '{\n  "tables": [\n    "users"\n  ],\n  "options": {\n    "cascade": true\n  }\n}'
    )
    await editor.fill('{"tables": ["users"], "options": {"cascade": true}}')  # same arguments, other layout
    await expect(card.locator(".edit-diff-none")).to_be_visible()
    await card.get_by_role("button", name="Approve").click()
    await expect(card.locator(".review")).to_have_attribute("data-review-status", "completed")

    card = page.locator(f"#msg-{rejected['id']}")
    editor = card.get_by_label("Arguments (JSON)")
    await editor.fill(
        '{"tables": ["orders"',
    )
    await card.get_by_role("button", name="Approve").click()
    await expect(card.locator(".field-error:not([hidden])")).to_contain_text("Invalid JSON")
    await expect(editor).to_have_attribute("aria-invalid", "true")
    await editor.fill('{"tables": ["orders"], "options": {"cascade": false}}')
    await expect(card.locator(".edit-diff li[data-key=options]")).to_have_text(
        'options: {"cascade":true} → {"cascade":false}'
    )
    await card.get_by_role("button", name="Reject").click()
    await expect(card.locator(".review")).to_have_attribute("data-review-status", "completed")

    for message, response in (
        (unchanged, {"selectedOption": "approve"}),
        (rejected, {"selectedOption": "reject"}),
    ):
        read = await user.agent.get(f"/api/v1/reviews/{message['id']}")
        assert read.json()["review"]["response"] == response
