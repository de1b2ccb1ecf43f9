"""Shared channels: who may read a channel and answer its reviews. The one access check the API
and the realtime gateway share.

A channel (an agent) belongs to one owner. The owner may add other users as **members**:
reviewers who see the channel (its messages, its reviews, its live events) and answer and vote,
but manage nothing. Each read a member may make is scoped by a :class:`Reach`; everything else
stays scoped by owner, so a member gets the same 404 from a management endpoint as a user
outside the channel. An API key acts for its owner only: it never reaches a channel through
membership.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from sayso_common.documents import AgentDoc, UserDoc
from sayso_common.mongo import AGENTS, Database, Doc, collection
from sayso_common.principals import Principal

# Members per channel: enough for a team, and a quorum is counted over them on every vote.
MAX_MEMBERS = 100


@dataclass(frozen=True)
class Reach:
    """Every channel of ``owner_id`` and the channels shared with that user; with ``only``, just
    those of them (a scoped token's or a stream ticket's channels)."""

    owner_id: str
    shared: frozenset[str] = field(default_factory=frozenset)
    only: frozenset[str] | None = None

    def scope(self) -> Doc:
        """The filter on documents that carry ``owner_id`` and ``channel_id`` (messages, events).
        Combine it with ``$and`` where the query has an ``$or`` of its own."""
        return self._filter("channel_id")

    def channels(self) -> Doc:
        """The same scope on the agents collection (a channel's id is the agent's ``_id``)."""
        return self._filter("_id")

    def _filter(self, channel_key: str) -> Doc:
        # Every key is an operator or ``owner_id``: callers merge the filter with their own
        # ``_id`` / ``channel_id`` conditions, which must not replace a part of it.
        shared = self.shared if self.only is None else self.shared & self.only
        base: Doc = {"owner_id": self.owner_id}
        if shared:
            base = {"$or": [base, {channel_key: {"$in": sorted(shared)}}]}
        if self.only is None:
            return base
        return {"$and": [{channel_key: {"$in": sorted(self.only)}}, base]}

    def covers(self, owner_id: str, channel_id: str) -> bool:
        if self.only is not None and channel_id not in self.only:
            return False
        return owner_id == self.owner_id or channel_id in self.shared


async def channel_ids(db: Database, reach: Reach) -> list[str]:
    """The ids of the channels ``reach`` covers that exist now. Reads of pending reviews filter
    on them: a review left behind by a deleted channel is nobody's to see or answer."""
    docs = await collection(db, AGENTS).find(reach.channels(), {"_id": 1}).to_list()
    return sorted(d["_id"] for d in docs)


async def shared_with(db: Database, user_ids: Iterable[str]) -> dict[str, frozenset[str]]:
    """user id -> the channels shared with that user, in one query (absent: none)."""
    wanted = set(user_ids)
    found: dict[str, set[str]] = {}
    query = {"members.user_id": {"$in": sorted(wanted)}}
    cursor = collection(db, AGENTS).find(query, {"members.user_id": 1})
    async for agent in cursor:
        for member in agent.get("members", []):
            if member["user_id"] in wanted:
                found.setdefault(member["user_id"], set()).add(agent["_id"])
    return {user: frozenset(channels) for user, channels in found.items()}


async def reach_of(db: Database, principal: Principal) -> Reach:
    """What ``principal`` may read: its owner's channels, and for a user also the channels shared
    with them (one indexed query; an API key needs none)."""
    if principal.kind != "user":
        return Reach(principal.owner_id, only=principal.channels)
    shared = await shared_with(db, [principal.owner_id])
    return Reach(principal.owner_id, shared.get(principal.owner_id, frozenset()), principal.channels)


async def reach_over(
    principal: Principal, owner_id: str, channel_id: str, is_member: Callable[[], Awaitable[bool]]
) -> Reach | None:
    """The reach ``principal`` has over one channel of ``owner_id``: as its owner, or as a member
    (``is_member`` reads that fresh); None for neither. The owner, the common case, costs no read
    at all."""
    if principal.channels is not None and channel_id not in principal.channels:
        return None
    if owner_id == principal.owner_id:
        return Reach(principal.owner_id, only=principal.channels)
    if principal.kind != "user":
        return None
    return Reach(principal.owner_id, frozenset({channel_id})) if await is_member() else None


async def is_member(db: Database, owner_id: str, channel_id: str, user_id: str) -> bool:
    """Whether ``user_id`` is a member of ``owner_id``'s channel ``channel_id`` now."""
    member = await collection(db, AGENTS).find_one(
        {"_id": channel_id, "owner_id": owner_id, "members.user_id": user_id}, {"_id": 1}
    )
    return member is not None


def reviewers(agent: AgentDoc) -> frozenset[str]:
    """The user ids that may answer the channel's reviews now: its owner and its members."""
    return frozenset([agent["owner_id"], *(m["user_id"] for m in agent.get("members", []))])


def may_answer(agent: AgentDoc, user_id: str) -> bool:
    """Whether ``user_id`` may answer the channel's reviews now. Every answer that does not come
    with a fresh session check (an e-mail link, a Slack button) asks this at answer time: a member
    removed since the notice was sent answers nothing."""
    return user_id in reviewers(agent)


def reviewers_by_email(agent: AgentDoc, users: Mapping[str, UserDoc]) -> dict[str, str]:
    """e-mail address -> user id of the channel's reviewers, from ``users`` (their documents by
    id): the only addresses a review's escalation may name. Built from the reviewers' own
    documents, never by looking an address up, so what an agent is told about an address it
    names never depends on whether some account has it."""
    return {users[uid]["email"]: uid for uid in sorted(reviewers(agent)) if uid in users}
