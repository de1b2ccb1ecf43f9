"""A human answers every review type in the browser; the answer is stored, shown at once, and
the agent's webhook receiver gets it."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from tests.support.receiver import Receiver
from tests.support.stack import Owner
from tests.web.conftest import Tab, sign_in

pytestmark = pytest.mark.slow

APPROVAL = {
    "type": "approval",
    "payload": {
        "allowComment": True,
        "options": [
            {"id": "ship", "label": "Ship it", "style": "success"},
            {"id": "hold", "label": "Hold", "style": "warning"},
            {"id": "kill", "label": "Cancel release", "style": "danger"},
        ],
    },
}
SELECTION = {
    "type": "selection",
    "payload": {
        "multiple": True,
        "options": [
            {"id": "eu", "label": "Europe", "description": "Frankfurt and Dublin"},
            {"id": "us", "label": "United States"},
            {"id": "ap", "label": "Asia Pacific"},
        ],
    },
}
FORM = {
    "type": "form",
    "payload": {
        "fields": [
            {"name": "owner", "label": "Owner e-mail", "type": "email", "required": True},
            {"name": "budget", "label": "Budget", "type": "number", "min": 1, "max": 100},
            {
                "name": "region",
                "label": "Region",
                "type": "select",
                "required": True,
                "options": [{"id": "eu", "label": "Europe"}, {"id": "us", "label": "US"}],
            },
            {"name": "urgent", "label": "Urgent", "type": "checkbox"},
            {"name": "start", "label": "Start date", "type": "date"},
            {"name": "notes", "label": "Notes", "type": "textarea"},
        ]
    },
}
TEXT = {"type": "text-input", "payload": {"placeholder": "Name the release", "minLength": 3, "maxLength": 40}}
FREEFORM = {"type": "freeform", "payload": {"schema": "anything"}}


async def stored(owner: Owner, message_id: str) -> dict[str, Any]:
    resp = await owner.agent.get(f"/api/v1/reviews/{message_id}")
    assert resp.status_code == 200, resp.text
    review: dict[str, Any] = resp.json()["review"]
    return review


async def test_answer_each_review_type(tab: Tab, user: Owner, receiver: Receiver) -> None:
    agent = await user.create_agent(name="release-bot", webhookUrl=receiver.url("/hook"))
    ids = {}
    for name, review in [
        ("approval", APPROVAL),
        ("selection", SELECTION),
        ("form", FORM),
        ("text", TEXT),
        ("freeform", FREEFORM),
    ]:
        ids[name] = (await user.post_message(agent["id"], text=f"**{name}** review", review=review))["id"]
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}")
    await expect(page.get_by_role("heading", name="release-bot")).to_be_visible()

    # Approval: buttons carry the option style; the comment goes along.
    card = page.locator(f"#msg-{ids['approval']}")
    await expect(card.get_by_role("button", name="Cancel release")).to_have_class("btn btn-danger")
    await expect(card.get_by_role("button", name="Hold")).to_have_class("btn btn-warning")
    await card.get_by_label("Comment").fill("Looks good")
    await card.get_by_role("button", name="Ship it").click()
    await expect(card.locator(".review")).to_have_attribute("data-review-status", "completed")
    await expect(card.locator(".answer")).to_contain_text("Ship it")
    assert (await stored(user, ids["approval"]))["response"] == {
        "selectedOption": "ship",
        "comment": "Looks good",
    }

    # Selection, multiple: checkboxes, descriptions shown.
    card = page.locator(f"#msg-{ids['selection']}")
    await expect(card.get_by_text("Frankfurt and Dublin")).to_be_visible()
    await card.get_by_label("Europe").check()
    await card.get_by_label("Asia Pacific").check()
    await card.get_by_role("button", name="Confirm Selection").click()
    await expect(card.locator(".review")).to_have_attribute("data-review-status", "completed")
    assert (await stored(user, ids["selection"]))["response"] == {"selectedIds": ["eu", "ap"]}

    # Form: every field type, required ones marked.
    card = page.locator(f"#msg-{ids['form']}")
    await expect(card.get_by_label("Owner e-mail")).to_have_attribute("aria-required", "true")
    await expect(card.locator(".req")).to_have_count(2)
    await card.get_by_label("Owner e-mail").fill("ops@example.com")
    await card.get_by_label("Budget").fill("42.5")
    await card.get_by_label("Region").select_option("us")
    await card.get_by_label("Urgent").check()
    await card.get_by_label("Start date").fill("2026-12-01")
    await card.get_by_label("Notes").fill("two\nlines")
    await card.get_by_role("button", name="Submit").click()
    await expect(card.locator(".review")).to_have_attribute("data-review-status", "completed")
    assert (await stored(user, ids["form"]))["response"] == {
        "owner": "ops@example.com",
        "budget": 42.5,
        "region": "us",
        "urgent": True,
        "start": "2026-12-01",
        "notes": "two\nlines",
    }

    # Text input.
    card = page.locator(f"#msg-{ids['text']}")
    await expect(card.get_by_placeholder("Name the release")).to_be_visible()
    await card.get_by_label("Your answer").fill("Aurora")
    await card.get_by_label("Your answer").press("Enter")
    await expect(card.locator(".review")).to_have_attribute("data-review-status", "completed")
    assert (await stored(user, ids["text"]))["response"] == {"text": "Aurora"}

    # Freeform: JSON that does not parse is refused in the page, with the parser's reason.
    card = page.locator(f"#msg-{ids['freeform']}")
    editor = card.get_by_label("Response (JSON)")
    await editor.fill('{"approved": true,')
    await card.get_by_role("button", name="Submit").click()
    await expect(card.locator(".field-error")).to_contain_text("Invalid JSON")
    await expect(editor).to_have_attribute("aria-invalid", "true")
    assert (await stored(user, ids["freeform"]))["status"] == "pending"
    await editor.fill('{"approved": true, "tags": ["a", "b"]}')
    await card.get_by_role("button", name="Submit").click()
    await expect(card.locator(".review")).to_have_attribute("data-review-status", "completed")
    assert (await stored(user, ids["freeform"]))["response"] == {"approved": True, "tags": ["a", "b"]}

    # The agent's receiver got every answer as a webhook, and the page shows it delivered.
    hooks = await receiver.wait_for("/hook", count=5)
    assert {h.json()["message_id"] for h in hooks} == set(ids.values())
    await expect(page.locator(f"#msg-{ids['approval']} [data-delivery]")).to_have_attribute(
        "data-delivery", "webhook_delivered"
    )


async def test_invalid_form_answer_shows_the_api_message(tab: Tab, user: Owner) -> None:
    agent = await user.create_agent(name="budget-bot")
    msg = await user.post_message(agent["id"], text="Budget?", review=FORM)
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}")
    card = page.locator(f"#msg-{msg['id']}")
    await card.get_by_label("Owner e-mail").fill("ops@example.com")
    await card.get_by_label("Region").select_option("eu")
    await card.get_by_label("Budget").fill("500")
    await card.get_by_role("button", name="Submit").click()
    # The API's 422 names response.budget; its message sits under that field, which is marked.
    budget = card.get_by_label("Budget")
    await expect(budget).to_have_attribute("aria-invalid", "true")
    await expect(card.locator('[data-field="response.budget"]')).to_have_text("must be at most 100")
    await expect(card.locator(".review")).to_have_attribute("data-review-status", "pending")
    assert (await stored(user, msg["id"]))["status"] == "pending"
    # A required field left empty: the API's message again, under that field.
    await card.get_by_label("Owner e-mail").fill("")
    await budget.fill("50")
    await card.get_by_role("button", name="Submit").click()
    await expect(card.locator('[data-field="response.owner"]')).to_have_text("Owner e-mail is required")
    await expect(card.locator('[data-field="response.budget"]')).to_be_hidden()
    # Fixed: accepted.
    await card.get_by_label("Owner e-mail").fill("ops@example.com")
    await card.get_by_role("button", name="Submit").click()
    await expect(card.locator(".review")).to_have_attribute("data-review-status", "completed")
    assert (await stored(user, msg["id"]))["response"] == {
        "owner": "ops@example.com",
        "budget": 50,
        "region": "eu",
        "urgent": False,
    }
