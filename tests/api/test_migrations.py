"""``sayso-api migrate``: documents stored by earlier releases brought to the current shape by
the command (the API no longer migrates at start), idempotently, with its progress printed."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.stack import Owner, RunningStack

APPROVAL = {"type": "approval", "payload": {}}


def _migrate(stack: RunningStack) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "sayso_api", "migrate"],
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_migrate_numbers_old_chains_and_ranks_old_reviews_once(
    stack: RunningStack, owner: Owner
) -> None:
    agent = await owner.create_agent()
    root = await owner.post_message(agent["id"], text="old root", review=APPROVAL)
    await owner.respond(root["id"], {"selectedOption": "reject"})
    follow = await owner.post_message(agent["id"], text="old v2", review=APPROVAL, iterationOf=root["id"])
    async with stack.mongo() as client:
        messages = client[stack.mongo_db].messages
        # As a pre-iteration release stored them: no numbers, no group on the root; and the
        # pending follow-up without the risk rank the inbox sorts on.
        await messages.update_one({"_id": root["id"]}, {"$unset": {"iteration": "", "group_id": ""}})
        await messages.update_one(
            {"_id": follow["id"]}, {"$unset": {"iteration": "", "review.risk_rank": ""}}
        )
        first = _migrate(stack)
        assert "iterations: 2 documents changed" in first
        assert "risk-rank: 1 documents changed" in first
        assert "done: 3 documents changed by 2 migrations" in first
        stored = await messages.find_one({"_id": follow["id"]})
        assert stored is not None
        assert (stored["iteration"], stored["review"]["risk_rank"]) == (2, 0)
        again = _migrate(stack)
        assert "iterations: 0 documents changed" in again
        assert "done: 0 documents changed by 2 migrations" in again
    chain = (await owner.agent.get(f"/api/v1/messages/iterations/{follow['id']}")).json()
    assert [m["iteration"] for m in chain["iterations"]] == [1, 2]
