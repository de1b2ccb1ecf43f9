"""The inbox's message list (static/messages.js) in Chromium: copies of a message that arrive out
of order never undo a newer state. Events come from different topics, so a delivery:status event
can overtake the review:responded event of the same answer."""

from __future__ import annotations

import pytest

from tests.web.conftest import Tab

pytestmark = pytest.mark.slow

SEQUENCE = """async (steps) => {
  const { MessageList } = await import("/static/messages.js");
  const container = document.createElement("div");
  const list = new MessageList(container, { channelName: () => "ch" });
  const base = {
    id: "msg_1", channelId: "agt_1", senderType: "agent", text: "Deploy?", status: "info",
    createdAt: "2026-11-28T12:00:00Z",
    review: { type: "approval", status: "completed", payload: { options: [] }, response: { selectedOption: "approve" } },
  };
  const badges = [];
  for (const [kind, fields] of steps) {
    if (kind === "copy") list.upsert({ ...base, ...fields });
    else if (kind === "own") list.upsert({ ...base, ...fields }, "", true);
    else list.deliveryChanged({ messageId: "msg_1", eventType: "review.responded", ...fields });
    const badge = container.querySelector("[data-delivery]");
    badges.push(badge ? badge.dataset.delivery : null);
  }
  return badges;
}"""

T1 = "2026-11-28T12:00:05Z"
T2 = "2026-11-28T12:00:06Z"


async def _badges(tab: Tab, steps: list[tuple[str, dict[str, str]]]) -> list[str | None]:
    if tab.page.url == "about:blank":
        await tab.page.goto("/")
    result: list[str | None] = await tab.page.evaluate(SEQUENCE, steps)
    return result


@pytest.mark.parametrize(
    ("steps", "badges"),
    [
        # The answer, its webhook delivered (status event), then the answer's own event, late.
        (
            [("own", {"updatedAt": T1, "deliveryStatus": "sent"}), ("status", {"status": "webhook_delivered"}),
             ("copy", {"updatedAt": T1, "deliveryStatus": "sent"})],
            ["sent", "webhook_delivered", "webhook_delivered"],
        ),
        # In order: the status event, then the dispatcher's copy onto the message (later updatedAt).
        (
            [("copy", {"updatedAt": T1, "deliveryStatus": "sent"}), ("status", {"status": "webhook_failed"}),
             ("copy", {"updatedAt": T2, "deliveryStatus": "webhook_failed"})],
            ["sent", "webhook_failed", "webhook_failed"],
        ),
        # A retry re-queues it: a later write, so "sent" again is newer.
        (
            [("copy", {"updatedAt": T1, "deliveryStatus": "webhook_failed"}),
             ("copy", {"updatedAt": T2, "deliveryStatus": "sent"})],
            ["webhook_failed", "sent"],
        ),
    ],
)  # fmt: skip
async def test_an_older_copy_never_undoes_a_delivery_status(
    tab: Tab, steps: list[tuple[str, dict[str, str]]], badges: list[str]
) -> None:
    assert await _badges(tab, steps) == badges
