"""The review store in memory: the same semantics as MongoDB's, for unit tests of the rules.

Every call first yields to the event loop, as a database round trip would, so answers and votes
sent at once interleave and collide on their guards exactly as they do on MongoDB.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any, cast

from sayso_api.reviewing.store import CHAIN_LIMIT
from sayso_common import membership
from sayso_common.documents import AgentDoc, MessageDoc, RememberedDoc
from sayso_common.membership import Reach
from sayso_common.review_state import Ballot, Completion, Guard
from sayso_common.views import MESSAGE_PROJECTION


def _apply(doc: dict[str, Any], update: dict[str, Any]) -> None:
    """Apply the ``$set`` (dotted paths) and ``$push`` (one value or ``$each``) of ``update``:
    the only operators the review path's updates use."""
    unknown = set(update) - {"$set", "$push"}
    if unknown:
        raise ValueError(f"the in-memory store does not apply {sorted(unknown)}")
    for path, value in update.get("$set", {}).items():
        *parents, leaf = path.split(".")
        target = doc
        for key in parents:
            target = target.setdefault(key, {})
        target[leaf] = copy.deepcopy(value)
    for path, value in update.get("$push", {}).items():
        *parents, leaf = path.split(".")
        target = doc
        for key in parents:
            target = target.setdefault(key, {})
        items = value["$each"] if isinstance(value, dict) and "$each" in value else [value]
        target.setdefault(leaf, []).extend(copy.deepcopy(items))


def _shown(doc: MessageDoc) -> MessageDoc:
    return cast(MessageDoc, {k: copy.deepcopy(v) for k, v in doc.items() if k not in MESSAGE_PROJECTION})


def _chain_order(doc: MessageDoc) -> tuple[int, int, str]:
    # MongoDB sorts a missing field before any number.
    iteration = doc.get("iteration")
    return (0, 0, doc["_id"]) if iteration is None else (1, iteration, doc["_id"])


class InMemoryReviewStore:
    def __init__(self) -> None:
        self.messages: dict[str, MessageDoc] = {}
        self.agents: dict[str, AgentDoc] = {}
        self.emails: dict[str, str] = {}
        self.remembered: list[RememberedDoc] = []

    # Filling it (what the API's other paths write on MongoDB).

    def put_message(self, doc: MessageDoc) -> None:
        self.messages[doc["_id"]] = copy.deepcopy(doc)

    def put_agent(self, agent: AgentDoc) -> None:
        self.agents[agent["_id"]] = copy.deepcopy(agent)

    def put_user(self, user_id: str, email: str) -> None:
        self.emails[user_id] = email

    # The port.

    async def message(
        self, message_id: str, reach: Reach | None = None, channel_id: str | None = None
    ) -> MessageDoc | None:
        await asyncio.sleep(0)
        doc = self.messages.get(message_id)
        if doc is None or (channel_id and doc["channel_id"] != channel_id):
            return None
        if reach is not None and not reach.covers(doc["owner_id"], doc["channel_id"]):
            return None
        return _shown(doc)

    async def is_member(self, owner_id: str, channel_id: str, user_id: str) -> bool:
        await asyncio.sleep(0)
        agent = self.agents.get(channel_id)
        if agent is None or agent["owner_id"] != owner_id:
            return False
        return any(m["user_id"] == user_id for m in agent.get("members", []))

    async def reviewers(self, channel_id: str) -> frozenset[str] | None:
        await asyncio.sleep(0)
        agent = self.agents.get(channel_id)
        return None if agent is None else membership.reviewers(agent)

    async def email(self, user_id: str) -> str | None:
        await asyncio.sleep(0)
        return self.emails.get(user_id)

    def _guarded(self, guard: Guard, update: dict[str, Any]) -> bool:
        doc = self.messages.get(guard.message_id)
        if doc is None or not guard.holds(doc):
            return False
        _apply(cast(dict[str, Any], doc), update)
        return True

    async def complete(self, completion: Completion, remember: RememberedDoc | None = None) -> bool:
        await asyncio.sleep(0)
        # No await between the check, the update and the entry: one unit of work.
        if not self._guarded(completion.guard, completion.update):
            return False
        if remember is not None:
            self.remembered.append(copy.deepcopy(remember))
        return True

    async def cast(self, ballot: Ballot) -> bool:
        await asyncio.sleep(0)
        return self._guarded(ballot.guard, ballot.update)

    async def chain_root(self, group_id: str) -> int:
        await asyncio.sleep(0)
        root = self.messages.get(group_id)
        if root is not None and "iteration" not in root:
            root["group_id"] = group_id
            root["iteration"] = 1
        numbers = [
            d["iteration"]
            for d in self.messages.values()
            if d.get("group_id") == group_id and "iteration" in d
        ]
        return max(numbers, default=None) or 1

    async def chain(self, owner_id: str, group_id: str) -> list[MessageDoc]:
        await asyncio.sleep(0)
        found = [
            d
            for d in self.messages.values()
            if d["owner_id"] == owner_id and (d["_id"] == group_id or d.get("group_id") == group_id)
        ]
        return [_shown(d) for d in sorted(found, key=_chain_order)[:CHAIN_LIMIT]]
