"""Helpers for the client tests: a human answering over REST while an SDK call waits."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.stack import Owner


async def pending_review(owner: Owner, channel: str, timeout: float = 15.0) -> dict[str, Any]:
    """The newest pending review of ``channel``, once one exists (read with the owner's key)."""
    deadline = asyncio.get_running_loop().time() + timeout
    # Quick at first (most reviews are there within a few requests), then every half second: an
    # example's process can take a minute to import its framework on a loaded machine, and
    # twenty requests a second through the edge meanwhile took CPU from that very import.
    pause = 0.05
    while asyncio.get_running_loop().time() < deadline:
        resp = await owner.agent.get("/api/v1/reviews/pending", params={"channel": channel})
        assert resp.status_code == 200, resp.text
        found: list[dict[str, Any]] = resp.json()
        if found:
            return found[0]
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, 0.5)
    raise AssertionError(f"no pending review appeared in {channel} within {timeout}s")


async def answer_next(
    owner: Owner, channel: str, response: dict[str, Any], delay: float = 0.3
) -> dict[str, Any]:
    """Wait for the channel's next review, then answer it as the human (after ``delay``, so the
    waiting side is usually parked on its long-poll). Returns the review's message as answered."""
    review = await pending_review(owner, channel)
    await asyncio.sleep(delay)
    answered = await owner.respond(review["id"], response)
    assert answered.status_code == 200, answered.text
    data: dict[str, Any] = answered.json()
    return data
