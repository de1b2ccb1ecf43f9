"""The two review stores (sayso_api.reviewing) behind one test face: filled and read back the
same way, so a case written once runs against the in-memory fake and against real MongoDB."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from pymongo import AsyncMongoClient

from sayso_api.reviewing.memory import InMemoryReviewStore
from sayso_api.reviewing.mongo import MongoReviewStore
from sayso_api.reviewing.service import Reviewing
from sayso_api.reviewing.store import ReviewStore
from sayso_common.documents import AgentDoc, MessageDoc, RememberedDoc
from sayso_common.mongo import AGENTS, MESSAGES, REMEMBERED, USERS, Database, Doc, collection
from sayso_common.reviews import normalise_payload

# Whole milliseconds: MongoDB keeps no finer time, and both stores must see the same instants.
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
OWNER = "usr_owner"
CHANNEL = "agt_1"


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class World(Protocol):
    @property
    def store(self) -> ReviewStore: ...

    async def put_message(self, doc: MessageDoc) -> None: ...
    async def put_agent(self, agent: AgentDoc) -> None: ...
    async def put_user(self, user_id: str, email: str) -> None: ...
    async def stored(self, message_id: str) -> MessageDoc | None: ...
    async def remembered(self) -> list[RememberedDoc]: ...


@dataclass
class MemoryWorld:
    store: InMemoryReviewStore = field(default_factory=InMemoryReviewStore)

    async def put_message(self, doc: MessageDoc) -> None:
        self.store.put_message(doc)

    async def put_agent(self, agent: AgentDoc) -> None:
        self.store.put_agent(agent)

    async def put_user(self, user_id: str, email: str) -> None:
        self.store.put_user(user_id, email)

    async def stored(self, message_id: str) -> MessageDoc | None:
        return self.store.messages.get(message_id)

    async def remembered(self) -> list[RememberedDoc]:
        return list(self.store.remembered)


class MongoWorld:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.store = MongoReviewStore(db)

    async def put_message(self, doc: MessageDoc) -> None:
        await collection(self.db, MESSAGES).insert_one(doc)

    async def put_agent(self, agent: AgentDoc) -> None:
        await collection(self.db, AGENTS).insert_one(agent)

    async def put_user(self, user_id: str, email: str) -> None:
        user: Doc = {"_id": user_id, "email": email}
        await self.db[str(USERS)].insert_one(user)

    async def stored(self, message_id: str) -> MessageDoc | None:
        return await collection(self.db, MESSAGES).find_one({"_id": message_id})

    async def remembered(self) -> list[RememberedDoc]:
        return await collection(self.db, REMEMBERED).find({}).to_list()

    async def clear(self) -> None:
        """Empty it for the next case (cheaper than a database per case)."""
        for name in (MESSAGES, AGENTS, USERS, REMEMBERED):
            await self.db[str(name)].delete_many({})


@contextlib.asynccontextmanager
async def mongo_world(mongo_url: str) -> AsyncIterator[MongoWorld]:
    """A database of its own on the session's MongoDB, read time-zone aware as the services do."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    db = client[f"reviewing_{secrets.token_hex(4)}"]
    try:
        await db.create_collection(str(REMEMBERED))  # a transaction cannot create it
        yield MongoWorld(db)
    finally:
        await client.drop_database(db.name)
        await client.close()


def service(world: World, clock: Clock) -> Reviewing:
    return Reviewing(world.store, clock)


async def team(world: World, members: int = 0, channel: str = CHANNEL) -> list[str]:
    """The channel of OWNER with ``members`` more reviewers: their user ids, the owner's first."""
    ids = [OWNER, *(f"usr_m{i}" for i in range(1, members + 1))]
    for user_id in ids:
        await world.put_user(user_id, f"{user_id}@example.com")
    agent: AgentDoc = {
        "_id": channel,
        "owner_id": OWNER,
        "name": "agent",
        "created_at": START,
        "members": [{"user_id": u, "email": f"{u}@example.com", "added_at": START} for u in ids[1:]],
    }
    await world.put_agent(agent)
    return ids


def message(
    message_id: str,
    review_type: str | None = "approval",
    payload: dict[str, Any] | None = None,
    *,
    channel: str = CHANNEL,
    owner: str = OWNER,
    ttl: float = 3600,
    approvals: int | None = None,
    status: str = "pending",
    **fields: Any,
) -> MessageDoc:
    """A stored message as the API writes it: with a review of ``review_type`` (its payload
    normalised), pending for ``ttl`` seconds from START unless ``status`` says otherwise."""
    doc: dict[str, Any] = {
        "_id": message_id,
        "channel_id": channel,
        "owner_id": owner,
        "sender_type": "agent",
        "text": f"about {message_id}",
        "created_at": START,
        "updated_at": START,
        **fields,
    }
    if review_type is not None:
        review: dict[str, Any] = {
            "type": review_type,
            "payload": normalise_payload(review_type, payload or {}, quorum=approvals is not None),
            "status": status,
            "expires_at": START + timedelta(seconds=ttl),
        }
        if approvals is not None:
            review["quorum"] = {"approvals": approvals}
            review["votes"] = []
        doc["review"] = review
        doc["delivery_status"] = "sent"
    return doc  # type: ignore[return-value]


def outbox_types(doc: MessageDoc | None) -> list[str]:
    stored = cast(dict[str, Any], doc or {})
    return [entry["type"] for entry in stored.get("outbox", [])]
