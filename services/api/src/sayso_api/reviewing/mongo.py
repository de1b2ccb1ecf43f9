"""The review store on MongoDB: the production :class:`~sayso_api.reviewing.store.ReviewStore`.

An answer or a vote is one conditional ``find_one_and_update`` on the message (its guard as the
filter, the event pushed to the message's ``outbox`` in the same write); an answer that also
remembers an approval writes both documents in one transaction.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from sayso_api import remembered
from sayso_api.reviewing.store import CHAIN_LIMIT
from sayso_common import membership
from sayso_common.documents import MessageDoc, RememberedDoc
from sayso_common.membership import Reach
from sayso_common.mongo import AGENTS, MESSAGES, USERS, Database, Doc, collection
from sayso_common.review_state import Ballot, Completion
from sayso_common.views import MESSAGE_PROJECTION


class MongoReviewStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._messages = collection(db, MESSAGES)

    async def message(
        self, message_id: str, reach: Reach | None = None, channel_id: str | None = None
    ) -> MessageDoc | None:
        query: Doc = {"_id": message_id}
        if reach is not None:
            query |= reach.scope()
        if channel_id:
            query["channel_id"] = channel_id
        return await self._messages.find_one(query, MESSAGE_PROJECTION)

    async def is_member(self, owner_id: str, channel_id: str, user_id: str) -> bool:
        return await membership.is_member(self._db, owner_id, channel_id, user_id)

    async def reviewers(self, channel_id: str) -> frozenset[str] | None:
        agent = await collection(self._db, AGENTS).find_one(
            {"_id": channel_id}, {"owner_id": 1, "members": 1}
        )
        return None if agent is None else membership.reviewers(agent)

    async def email(self, user_id: str) -> str | None:
        user = await collection(self._db, USERS).find_one({"_id": user_id}, {"email": 1})
        return None if user is None else user["email"]

    async def complete(self, completion: Completion, remember: RememberedDoc | None = None) -> bool:
        if remember is None:
            found = await self._messages.find_one_and_update(
                completion.guard.query, completion.update, projection={"_id": 1}
            )
            return found is not None

        async def answer_and_remember(session: AsyncClientSession) -> Any:
            found = await self._messages.find_one_and_update(
                completion.guard.query, completion.update, projection={"_id": 1}, session=session
            )
            if found is not None:
                await remembered.store(self._db, remember, session)
            return found

        async with self._db.client.start_session() as session:
            found = await session.with_transaction(answer_and_remember)
        if found is None:
            return False
        remembered.stored(self._db)
        return True

    async def cast(self, ballot: Ballot) -> bool:
        found = await self._messages.find_one_and_update(ballot.guard.query, ballot.update, {"_id": 1})
        return found is not None

    async def chain_root(self, group_id: str) -> int:
        await self._messages.update_one(
            {"_id": group_id, "iteration": {"$exists": False}},
            {"$set": {"group_id": group_id, "iteration": 1}},
        )
        last = await self._messages.find_one(
            {"group_id": group_id}, {"iteration": 1}, sort=[("iteration", -1)]
        )
        return (last.get("iteration") if last else None) or 1

    async def chain(self, owner_id: str, group_id: str) -> list[MessageDoc]:
        query: Doc = {"owner_id": owner_id, "$or": [{"_id": group_id}, {"group_id": group_id}]}
        found = self._messages.find(query, MESSAGE_PROJECTION).sort([("iteration", 1), ("_id", 1)])
        return await found.limit(CHAIN_LIMIT).to_list()
