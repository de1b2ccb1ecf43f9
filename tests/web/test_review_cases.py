"""The shared table of review responses (tests/cases/review_responses.json) against the inbox's
review_rules.js, run in Chromium: every response the API refuses, the inbox refuses with the same
field and message (or, where only the API can tell, leaves to it), and every response the API
takes, the inbox sends. tests/test_review_cases.py runs the same table against the Python rules."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Request, expect

from tests.support.review_cases import response_cases, table
from tests.support.stack import Owner
from tests.web.conftest import Tab, sign_in

RUN = """async ({cases, shapes, approving}) => {
  const rules = await import("/static/review_rules.js");
  return {
    responses: cases.map(([type, payload, response]) => rules.checkResponse(type, payload, response)),
    defaults: rules.DEFAULT_APPROVAL,
    shapes: shapes.map((payload) => rules.selectionItems(payload)),
    approves: approving.map((option) => rules.approves(option)),
    approvalOptions: rules.approvalOptions({}),
  };
}"""


async def test_the_inbox_applies_the_apis_rules_to_every_case_in_the_table(tab: Tab) -> None:
    shared = table()
    cases = response_cases()
    if tab.page.url == "about:blank":
        await tab.page.goto("/")
    got: dict[str, Any] = await tab.page.evaluate(
        RUN,
        {
            "cases": [[type_, payload, case["response"]] for _, type_, payload, case in cases],
            "shapes": [s["payload"] for s in shared["selection_shapes"]],
            "approving": [c["option"] for c in shared["approves"]],
        },
    )
    expected = [
        {"field": case["field"], "message": case["message"]}
        if "field" in case and case.get("inbox") != "api"
        else None
        for _, _, _, case in cases
    ]
    wrong = [
        f"{name}: inbox says {answer}, API {want}"
        for (name, _, _, _), answer, want in zip(cases, got["responses"], expected, strict=True)
        if answer != want
    ]
    assert not wrong, "\n".join(wrong)
    assert got["defaults"] == got["approvalOptions"] == shared["default_approval_options"]
    assert got["shapes"] == [{"items": s["items"], "multi": s["multi"]} for s in shared["selection_shapes"]]
    assert got["approves"] == [c["approves"] for c in shared["approves"]]


async def test_the_inbox_shows_what_the_api_would_refuse_without_sending_it(tab: Tab, user: Owner) -> None:
    agent = await user.create_agent(name="rules-bot")
    form = {"fields": [{"name": "day", "label": "Day", "type": "date", "required": True}]}
    msg = await user.post_message(agent["id"], text="When?", review={"type": "form", "payload": form})
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}")
    sent: list[str] = []

    def watch(request: Request) -> None:
        if request.url.endswith("/respond"):
            sent.append(request.url)

    page.on("request", watch)
    card = page.locator(f"#msg-{msg['id']}")
    await card.get_by_role("button", name="Submit").click()
    error = card.locator('[data-field="response.day"]')
    await expect(error).to_have_text("Day is required")
    await expect(card.get_by_label("Day")).to_have_attribute("aria-invalid", "true")
    assert sent == []
    # Fixed, it is sent and stored.
    await card.get_by_label("Day").fill("2026-12-07")
    await card.get_by_role("button", name="Submit").click()
    await expect(card.locator(".review")).to_have_attribute("data-review-status", "completed")
    assert len(sent) == 1
