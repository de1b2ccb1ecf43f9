"""The session stack's notifier runs without SAYSO_SMTP_URL (as `make run` does): it stays up
and ready, and records each e-mail it cannot send as not configured instead of failing."""

from __future__ import annotations

from typing import Any

import httpx

from tests.notifier.test_email import APPROVAL
from tests.support.stack import Owner, RunningStack, eventually


async def test_without_smtp_e_mail_is_recorded_as_not_configured(stack: RunningStack, owner: object) -> None:
    assert isinstance(owner, Owner)
    agent = await owner.create_agent()
    msg = await owner.post_message(agent["id"], text="Anyone?", review=APPROVAL)

    async def recorded() -> list[dict[str, Any]] | None:
        resp = await owner.human.get("/api/v1/notifications", params={"message": msg["id"]})
        data: list[dict[str, Any]] = resp.json()["data"]
        return data or None

    (entry,) = await eventually(recorded, 15, "the e-mail notification recorded")
    assert entry["state"] == "skipped"
    assert entry["kind"] == "email"
    assert "not configured" in entry["lastError"]
    assert "not sent later" in entry["lastError"]  # the owner is told it will not come
    async with httpx.AsyncClient(timeout=5) as client:
        ready = await client.get(f"http://127.0.0.1:{stack.procs['notifier'].port}/readyz")
    assert ready.status_code == 200, ready.text
    assert stack.procs["notifier"].alive
